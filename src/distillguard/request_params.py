"""OpenAI request parameters -> canonical fields: the one list every path reads them with.

Gateway bodies (Envoy), the LiteLLM guardrail and logger, OTLP invocation parameters and request
logs all take a call's sampling parameters by these names (Chat Completions and Responses API).
No imports: the LiteLLM plug-in loads this in LiteLLM's own environment.
"""
OPENAI_REQUEST_PARAMS: dict[str, str] = {
    "max_tokens": "max_output_tokens", "max_completion_tokens": "max_output_tokens",
    "max_output_tokens": "max_output_tokens", "n": "n", "logprobs": "logprobs", "top_logprobs": "top_logprobs",
    "temperature": "temperature", "top_p": "top_p", "reasoning_effort": "reasoning_effort",
}
