"""OpenAI request parameters and CDN fingerprint headers -> canonical fields: the one list every path reads them with.

Gateway bodies (Envoy), the LiteLLM guardrail and logger, OTLP invocation parameters and request
logs all take a call's sampling parameters by these names (Chat Completions and Responses API),
and gateways and LiteLLM's logged headers the client fingerprint a CDN adds.
No imports: the LiteLLM plug-in loads this in LiteLLM's own environment.
"""
OPENAI_REQUEST_PARAMS: dict[str, str] = {
    "max_tokens": "max_output_tokens", "max_completion_tokens": "max_output_tokens",
    "max_output_tokens": "max_output_tokens", "n": "n", "logprobs": "logprobs", "top_logprobs": "top_logprobs",
    "temperature": "temperature", "top_p": "top_p", "reasoning_effort": "reasoning_effort",
}

FINGERPRINT_HEADERS: tuple[str, ...] = ("cloudfront-viewer-ja4-fingerprint", "cloudfront-viewer-ja3-fingerprint")
"""Request headers a CDN adds with the client's TLS fingerprint (CloudFront), first present wins (JA4
before JA3, as in ``schema.EVENT_ALIASES``): the gateways and LiteLLM's logged headers read them."""


def fingerprint_of_headers(headers: dict) -> str | None:
    """The client fingerprint a request's headers carry (:data:`FINGERPRINT_HEADERS`, any case), or None."""
    low = {str(k).lower(): v for k, v in headers.items()} if headers else {}
    return next((low[h] for h in FINGERPRINT_HEADERS if isinstance(low.get(h), str) and low[h]), None)
