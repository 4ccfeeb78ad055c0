"""Synthetic responses whose length follows ``output_tokens`` (capped).

A bank of texts per (response kind, language, length bucket, variant) is built
once per run; each event takes one by index. Texts are capped at the scenario's
``response_max_chars`` to keep files small; ``output_tokens`` keeps the true size.
"""
from __future__ import annotations

import random

import numpy as np

RKINDS = ("answer", "short", "json", "letter", "reasoning", "grade", "qa", "code", "refusal")

# prompt kind -> response kind
KIND_TO_RKIND = {
    "chat": "answer", "chat_popular": "answer", "followup": "answer", "app": "short", "batch_doc": "json",
    "eval": "letter", "tutoring": "reasoning", "coding": "code", "cot_harvest": "reasoning", "rubric": "grade",
    "synthesis": "qa", "jailbreak": "reasoning", "capsweep": "code", "whale": "reasoning", "lowslow": "reasoning",
}

# token edges of the length buckets
BUCKET_EDGES = np.array([0, 4, 12, 32, 64, 128, 256, 512, 1024, 2048, 4096, 1 << 40], dtype=np.int64)
N_VARIANTS = 6
CHARS_PER_TOKEN = {"en": 4.0, "es": 4.0, "ru": 3.2, "zh": 1.4}

_S = {
    "en": {
        "answer": ["Sure, here is a simple way to do it.", "First, decide what matters most to you.", "A good option is to start small and build a habit.", "Many people find it easier with a short checklist.", "If that does not work, try a different approach.", "In short, keep it simple and consistent."],
        "short": ["Positive.", "The customer reports a late delivery.", "Thanks for reaching out, we are sorry for the trouble.", "Neutral.", "Product: kettle; issue: stopped working."],
        "json": ['{"invoice_no": "48213", "date": "2026-03-04", "vendor": "Acme Ltd", "total": 1820.00}', '{"category": "software"}', "The supplier pays for damages caused by its own negligence, up to a limit."],
        "letter": ["B", "C", "A", "D", "The answer is (B).", "Step 1: eliminate A. Step 2: compare C and D. Answer: C."],
        "reasoning": ["Let me work through this carefully.", "First, write down what is given.", "Step 1: set up the equation from the conditions.", "Step 2: simplify both sides.", "Wait, let me double-check that sign.", "Substituting back confirms the value.", "Now consider the edge case separately.", "So the intermediate result is consistent.", "Therefore, the final answer follows."],
        "grade": ["Score: 7/10.", "Correctness: the main result is right but one step is unjustified.", "Completeness: the edge case is missing.", "Clarity: well structured.", "Overall the answer is acceptable with minor gaps.", "SCORE=0.72; WHY=correct but terse."],
        "qa": ["Q1: What is the derivative of x^2? A1: 2x, by the power rule.", "Q2: State the pigeonhole principle. A2: If n+1 items go into n boxes, one box has two.", '{"instruction": "Explain osmosis", "response": "Osmosis is the diffusion of water..."}', "Q3: Why is the sky blue? A3: Rayleigh scattering favours short wavelengths."],
        "code": ["I'll start by reading the file.", '{"tool": "read_file", "args": {"path": "src/app/client.py"}}', "Observation: the retry loop never resets the counter.", "```python\nfor attempt in range(retries):\n    try:\n        return send(req)\n    except Timeout:\n        sleep(2 ** attempt)\n```", "Thought: now run the tests.", '{"tool": "run_tests", "args": {}}', "All 42 tests pass."],
        "refusal": ["I can't help with that request.", "I'm not able to provide that, but I can help with something related."],
    },
    "zh": {
        "answer": ["好的，这里有一个简单的方法。", "首先，想清楚你最在意什么。", "可以从小处开始，慢慢养成习惯。", "很多人觉得列个清单更容易。", "如果不行，可以换个思路。", "总之，保持简单并坚持下去。"],
        "short": ["正面。", "顾客反映配送延迟。", "感谢您的反馈，给您带来不便深表歉意。", "中性。"],
        "json": ['{"发票号": "48213", "日期": "2026-03-04", "供应商": "Acme有限公司", "金额": 1820.00}', "供方对自身过失造成的损失承担赔偿责任，以上限为准。"],
        "letter": ["B", "C", "A", "D", "答案是（B）。"],
        "reasoning": ["让我仔细想一想。", "首先，写出已知条件。", "第一步：根据条件列出方程。", "第二步：化简两边。", "等一下，检查一下符号。", "代回去验证结果一致。", "再单独考虑边界情况。", "因此可以得到最终答案。"],
        "grade": ["得分：7/10。", "正确性：主要结论正确，但有一步缺少论证。", "完整性：缺少边界情况。", "清晰度：结构清楚。"],
        "qa": ["问1：x^2的导数是什么？答1：2x。", "问2：什么是抽屉原理？答2：n+1个物品放进n个抽屉，至少一个抽屉有两个。", '{"指令": "解释渗透作用", "回答": "渗透是水分子的扩散……"}'],
        "code": ["我先读取这个文件。", '{"tool": "read_file", "args": {"path": "src/app/client.py"}}', "观察：重试循环没有重置计数器。", "思考：现在运行测试。", "全部测试通过。"],
        "refusal": ["抱歉，我无法帮助完成这个请求。", "这个我不能提供，但可以帮你做相关的事。"],
    },
    "ru": {
        "answer": ["Конечно, вот простой способ.", "Сначала решите, что для вас важнее всего.", "Начните с малого и превратите это в привычку.", "Многим помогает короткий список.", "Если не получится, попробуйте другой подход."],
        "short": ["Позитивная.", "Клиент жалуется на задержку доставки.", "Спасибо за обращение, приносим извинения.", "Нейтральная."],
        "json": ['{"номер": "48213", "дата": "2026-03-04", "поставщик": "ООО Акме", "сумма": 1820.00}', "Поставщик возмещает ущерб от своей небрежности в пределах лимита."],
        "letter": ["B", "C", "A", "D", "Ответ: (B)."],
        "reasoning": ["Давайте разберёмся внимательно.", "Сначала запишем, что дано.", "Шаг 1: составим уравнение из условий.", "Шаг 2: упростим обе части.", "Стоп, проверю знак.", "Подстановка подтверждает значение.", "Отдельно рассмотрим крайний случай.", "Следовательно, получаем окончательный ответ."],
        "grade": ["Оценка: 7/10.", "Правильность: вывод верный, но один шаг не обоснован.", "Полнота: не рассмотрен крайний случай.", "Ясность: хорошо структурировано."],
        "qa": ["В1: Чему равна производная x^2? О1: 2x.", "В2: Сформулируйте принцип Дирихле. О2: Если n+1 предмет в n ящиках, в одном их два.", '{"инструкция": "Объясни осмос", "ответ": "Осмос — это диффузия воды..."}'],
        "code": ["Сначала прочитаю файл.", '{"tool": "read_file", "args": {"path": "src/app/client.py"}}', "Наблюдение: цикл повторов не сбрасывает счётчик.", "Мысль: теперь запущу тесты.", "Все тесты прошли."],
        "refusal": ["Извините, я не могу помочь с этим запросом.", "Это я предоставить не могу, но могу помочь с чем-то похожим."],
    },
    "es": {
        "answer": ["Claro, aquí tienes una forma sencilla.", "Primero, decide qué es lo más importante para ti.", "Empieza poco a poco y conviértelo en hábito.", "A mucha gente le ayuda una lista corta.", "Si no funciona, prueba otro enfoque."],
        "short": ["Positivo.", "El cliente reporta un retraso en la entrega.", "Gracias por escribirnos, lamentamos las molestias.", "Neutro."],
        "json": ['{"factura": "48213", "fecha": "2026-03-04", "proveedor": "Acme S.L.", "total": 1820.00}', "El proveedor responde por daños de su propia negligencia hasta un límite."],
        "letter": ["B", "C", "A", "D", "La respuesta es (B)."],
        "reasoning": ["Vamos a resolverlo con cuidado.", "Primero, anotamos los datos.", "Paso 1: planteamos la ecuación a partir de las condiciones.", "Paso 2: simplificamos ambos lados.", "Un momento, reviso el signo.", "Sustituyendo se confirma el valor.", "Consideremos aparte el caso límite.", "Por lo tanto, obtenemos la respuesta final."],
        "grade": ["Puntuación: 7/10.", "Corrección: el resultado es correcto pero falta justificar un paso.", "Completitud: falta el caso límite.", "Claridad: bien estructurado."],
        "qa": ["P1: ¿Derivada de x^2? R1: 2x.", "P2: Enuncia el principio del palomar. R2: Si n+1 objetos van en n cajas, una tiene dos.", '{"instrucción": "Explica la ósmosis", "respuesta": "La ósmosis es la difusión del agua..."}'],
        "code": ["Primero leo el archivo.", '{"tool": "read_file", "args": {"path": "src/app/client.py"}}', "Observación: el bucle de reintentos no reinicia el contador.", "Pensamiento: ahora ejecuto los tests.", "Todos los tests pasan."],
        "refusal": ["Lo siento, no puedo ayudar con esa solicitud.", "No puedo proporcionarlo, pero puedo ayudarte con algo relacionado."],
    },
}


def build_response_bank(langs: tuple[str, ...], max_chars: int, seed: int) -> tuple[list[str], dict]:
    """Return (texts, index) where index[(rkind, lang)] = base offset; a text is at
    ``base + bucket * N_VARIANTS + variant``."""
    rng = random.Random(seed * 31 + 5)
    texts: list[str] = []
    index: dict[tuple[str, str], int] = {}
    n_buckets = len(BUCKET_EDGES) - 1
    for rk in RKINDS:
        for lang in langs:
            index[(rk, lang)] = len(texts)
            sents = _S[lang][rk]
            sep = "" if lang == "zh" else " "
            cpt = CHARS_PER_TOKEN[lang]
            for b in range(n_buckets):
                lo, hi = BUCKET_EDGES[b], min(BUCKET_EDGES[b + 1], 8192)
                target_tokens = max(1.0, (max(lo, 1) * hi) ** 0.5)
                target = int(min(max_chars, max(1, target_tokens * cpt)))
                for _ in range(N_VARIANTS):
                    if rk == "letter" and b < 2:
                        texts.append(rng.choice("ABCD"))
                        continue
                    parts: list[str] = []
                    size = 0
                    i = rng.randrange(len(sents))
                    while size < target:
                        s = sents[i % len(sents)]
                        parts.append(s)
                        size += len(s) + len(sep)
                        i += rng.randint(1, 2)
                    txt = sep.join(parts)
                    if len(txt) > target:
                        txt = txt[:target].rstrip()
                    texts.append(txt)
    return texts, index
