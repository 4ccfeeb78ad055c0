"""Slot fillers for the prompt grammars, per language.

Fillers are generated compositionally (frames x numbers x word lists) once per
run from a seeded generator, so a run has thousands of distinct problems,
payloads and tasks per language, shared by benign and attack kinds alike.
"""
from __future__ import annotations

import random

LANGS = ("en", "zh", "ru", "es")

# ------------------------------------------------------------------ problems {q}
Q_FRAMES = {
    "en": [
        "A train leaves at {h}:00 at {b} km/h; a second train leaves the same station {c} hours later at {d} km/h. When does the second catch up?",
        "If {a} workers build a wall in {b} days, how many days would {c} workers need?",
        "Find all real x such that x^2 - {a}x + {b} = 0.",
        "A bag has {a} red and {b} blue marbles. Two are drawn without replacement. What is the probability both are red?",
        "What is the remainder when {a}^{b} is divided by {c}?",
        "A rectangle has perimeter {a} cm and area {b} cm^2. Find its side lengths.",
        "An investment of {a}00 dollars grows at {b}% per year. What is it worth after {c} years?",
        "Is {a}{b}{c} a prime number? Justify.",
        "How many ways can {a} people sit around a round table if two of them refuse to sit together?",
        "A car uses {b} liters per 100 km. How much fuel for a {a}0 km trip with a {c}% detour?",
        "Why does {concept}?",
        "Design an algorithm that finds the {a}-th smallest element of an unsorted array of {b}000 numbers, and analyse its complexity.",
    ],
    "zh": [
        "一列火车{h}点以每小时{b}公里出发，{c}小时后另一列火车以每小时{d}公里从同一车站出发。第二列火车何时追上？",
        "如果{a}个工人{b}天能砌好一堵墙，那么{c}个工人需要多少天？",
        "求所有实数x，使得x^2 - {a}x + {b} = 0。",
        "袋中有{a}个红球和{b}个蓝球，不放回地取两个，两个都是红球的概率是多少？",
        "{a}的{b}次方除以{c}的余数是多少？",
        "一个长方形周长为{a}厘米，面积为{b}平方厘米，求边长。",
        "{a}00元按年利率{b}%复利增长，{c}年后是多少？",
        "{a}个人围坐圆桌，其中两人不愿相邻，有多少种坐法？",
        "为什么{concept}？",
        "设计一个算法，在{b}000个无序数中找到第{a}小的元素，并分析复杂度。",
    ],
    "ru": [
        "Поезд выходит в {h}:00 со скоростью {b} км/ч; через {c} ч с той же станции выходит второй со скоростью {d} км/ч. Когда второй догонит первый?",
        "Если {a} рабочих строят стену за {b} дней, за сколько дней её построят {c} рабочих?",
        "Найдите все действительные x, для которых x^2 - {a}x + {b} = 0.",
        "В мешке {a} красных и {b} синих шаров. Достают два без возвращения. Какова вероятность, что оба красные?",
        "Каков остаток от деления {a}^{b} на {c}?",
        "Периметр прямоугольника {a} см, площадь {b} см^2. Найдите стороны.",
        "Вклад {a}00 рублей растёт на {b}% в год. Сколько будет через {c} лет?",
        "Сколькими способами {a} человек могут сесть за круглый стол, если двое не хотят сидеть рядом?",
        "Почему {concept}?",
        "Придумайте алгоритм поиска {a}-го наименьшего элемента среди {b}000 чисел и оцените сложность.",
    ],
    "es": [
        "Un tren sale a las {h}:00 a {b} km/h; otro sale de la misma estación {c} horas después a {d} km/h. ¿Cuándo lo alcanza?",
        "Si {a} obreros levantan un muro en {b} días, ¿cuántos días necesitan {c} obreros?",
        "Halla todos los x reales tales que x^2 - {a}x + {b} = 0.",
        "Una bolsa tiene {a} canicas rojas y {b} azules. Se sacan dos sin reposición. ¿Probabilidad de que ambas sean rojas?",
        "¿Cuál es el resto de dividir {a}^{b} entre {c}?",
        "Un rectángulo tiene perímetro {a} cm y área {b} cm^2. Halla sus lados.",
        "Una inversión de {a}00 euros crece un {b}% anual. ¿Cuánto vale tras {c} años?",
        "¿De cuántas formas se sientan {a} personas en una mesa redonda si dos no quieren estar juntas?",
        "¿Por qué {concept}?",
        "Diseña un algoritmo que encuentre el {a}-ésimo menor de {b}000 números desordenados y analiza su complejidad.",
    ],
}

CONCEPTS = {
    "en": ["ice float on water", "the sky look blue", "compound interest grow exponentially", "a heap give O(log n) insertion", "the moon show phases", "salt lower the freezing point of water", "a transformer need positional encodings", "inflation reduce real wages", "the derivative of e^x equal itself", "TCP need a three-way handshake"],
    "zh": ["冰会浮在水面上", "天空是蓝色的", "复利呈指数增长", "堆的插入是O(log n)", "月亮有阴晴圆缺", "盐能降低水的冰点", "Transformer需要位置编码", "通货膨胀会降低实际工资", "e^x的导数等于它本身"],
    "ru": ["лёд плавает на воде", "небо голубое", "сложные проценты растут экспоненциально", "вставка в кучу занимает O(log n)", "у Луны есть фазы", "соль понижает температуру замерзания воды", "трансформеру нужны позиционные кодировки", "инфляция снижает реальные зарплаты"],
    "es": ["el hielo flota en el agua", "el cielo es azul", "el interés compuesto crece exponencialmente", "insertar en un montículo cuesta O(log n)", "la luna tiene fases", "la sal baja el punto de congelación del agua", "un transformer necesita codificación posicional", "la inflación reduce los salarios reales"],
}

# ------------------------------------------------------------------ chat {topic}
TOPICS = {
    "en": ["plan a trip to Lisbon", "cook rice without a rice cooker", "learn Spanish faster", "fix a slow laptop", "write a cover letter", "save money on groceries", "sleep better", "start running", "train a puppy", "choose a laptop for college", "negotiate a raise", "make sourdough bread", "understand my electricity bill", "organize my week", "prepare for a job interview", "keep houseplants alive", "get rid of fruit flies", "pick a birthday gift", "set up a budget spreadsheet", "learn to draw", "write a wedding toast", "clean a cast iron pan", "memorize a speech", "choose running shoes", "reply to an angry email", "start a vegetable garden", "learn chess openings", "stop procrastinating", "back up my phone", "explain taxes to a teenager"],
    "zh": ["安排去成都的旅行", "不用电饭煲煮饭", "更快地学英语", "让电脑变快", "写求职信", "买菜省钱", "睡得更好", "开始跑步", "训练小狗", "挑选大学用的笔记本电脑", "和老板谈加薪", "准备面试", "养好绿植", "做一个记账表", "写婚礼致辞", "背下一篇演讲稿", "挑跑鞋", "回复一封生气的邮件", "在阳台种菜", "学国际象棋开局", "戒掉拖延", "备份手机"],
    "ru": ["спланировать поездку в Казань", "сварить рис без рисоварки", "быстрее выучить английский", "ускорить старый ноутбук", "написать сопроводительное письмо", "экономить на продуктах", "лучше высыпаться", "начать бегать", "приучить щенка", "выбрать ноутбук для учёбы", "попросить повышение", "подготовиться к собеседованию", "ухаживать за комнатными растениями", "написать тост на свадьбу", "выучить речь", "выбрать кроссовки", "ответить на гневное письмо", "вырастить овощи на даче", "перестать откладывать дела", "сделать резервную копию телефона"],
    "es": ["planear un viaje a Sevilla", "hacer arroz sin arrocera", "aprender inglés más rápido", "acelerar un portátil lento", "escribir una carta de presentación", "ahorrar en la compra", "dormir mejor", "empezar a correr", "educar a un cachorro", "elegir un portátil para la universidad", "pedir un aumento", "preparar una entrevista", "cuidar plantas de interior", "escribir un brindis de boda", "memorizar un discurso", "elegir zapatillas para correr", "responder un correo enfadado", "empezar un huerto", "dejar de procrastinar", "hacer copia de seguridad del móvil"],
}

# ------------------------------------------------------------------ app {payload}
PAYLOAD_PARTS = {
    "en": (["The {p} I ordered", "My new {p}", "This {p}", "The {p} from your store"],
           ["arrived two days late", "works great", "stopped working after a week", "is smaller than described", "was exactly what I needed", "came with a scratch"],
           ["and support never answered.", "- would buy again.", "Please refund order #{o}.", "Five stars.", "Can I exchange it?", "Not happy."]),
    "zh": (["我买的{p}", "新买的{p}", "这款{p}"], ["晚到了两天", "非常好用", "用了一周就坏了", "比描述的小", "正是我需要的"], ["，客服一直没回复。", "，还会再买。", "，请退款，订单号{o}。", "，五星好评。", "，能换货吗？"]),
    "ru": (["Заказанный {p}", "Мой новый {p}", "Этот {p}"], ["пришёл на два дня позже", "отлично работает", "сломался через неделю", "меньше, чем в описании", "именно то, что нужно"], ["и поддержка молчит.", "— куплю ещё.", "Верните деньги за заказ №{o}.", "Пять звёзд.", "Можно обменять?"]),
    "es": (["El {p} que pedí", "Mi nuevo {p}", "Este {p}"], ["llegó dos días tarde", "funciona genial", "dejó de funcionar en una semana", "es más pequeño de lo descrito", "es justo lo que necesitaba"], ["y soporte no responde.", "- volvería a comprar.", "Reembolsen el pedido #{o}.", "Cinco estrellas.", "¿Puedo cambiarlo?"]),
}
PRODUCTS = {
    "en": ["blender", "headset", "backpack", "phone case", "desk lamp", "kettle", "keyboard", "air fryer"],
    "zh": ["搅拌机", "耳机", "背包", "手机壳", "台灯", "电水壶", "键盘", "空气炸锅"],
    "ru": ["блендер", "наушники", "рюкзак", "чехол", "светильник", "чайник", "клавиатура"],
    "es": ["licuadora", "auricular", "mochila", "funda", "flexo", "hervidor", "teclado"],
}

# ------------------------------------------------------------------ batch {doc}
DOC_FRAMES = {
    "en": ["INVOICE {o}\nDate: 2026-0{m}-{d}\nVendor: {v} Ltd\nItems: {a} x consulting hours\nTotal: {t}.00 USD", "Clause {a}.{b}: The Supplier shall indemnify the Customer against all claims arising from {v}'s negligence, up to {t} USD.", "Expense: {v} subscription, {t}.50 USD, card ending {o}"],
    "zh": ["发票 {o}\n日期：2026-0{m}-{d}\n供应商：{v}有限公司\n项目：咨询{a}小时\n合计：{t}.00元", "第{a}.{b}条：供方应赔偿需方因{v}过失产生的一切索赔，上限{t}元。"],
    "ru": ["СЧЁТ {o}\nДата: 2026-0{m}-{d}\nПоставщик: ООО «{v}»\nПозиции: {a} ч консультаций\nИтого: {t}.00 руб.", "Пункт {a}.{b}: Поставщик возмещает Заказчику все претензии, вызванные небрежностью {v}, до {t} руб."],
    "es": ["FACTURA {o}\nFecha: 2026-0{m}-{d}\nProveedor: {v} S.L.\nConceptos: {a} horas de consultoría\nTotal: {t}.00 EUR", "Cláusula {a}.{b}: El Proveedor indemnizará al Cliente por reclamaciones derivadas de negligencia de {v}, hasta {t} EUR."],
}
VENDORS = ["Acme", "Northwind", "Globex", "Initech", "Umbrella", "Stark", "Wayne", "Hooli", "Vandelay", "Soylent"]

# ------------------------------------------------------------------ coding {task} {file} {plang}
TASK_PARTS = {
    "en": (["Add retry with exponential backoff to", "Fix the off-by-one bug in", "Write unit tests for", "Refactor", "Add type hints to", "Implement pagination in", "Speed up", "Add structured logging to", "Remove the deprecated API usage from"],
           ["the HTTP client", "the CSV parser", "the auth middleware", "the cache layer", "the date utilities", "the payment webhook handler", "the search endpoint", "the config loader"]),
    "zh": (["给", "修复", "为", "重构", "优化"], ["HTTP客户端添加指数退避重试", "CSV解析器的差一错误", "认证中间件编写单元测试", "缓存层", "搜索接口的性能", "支付回调处理逻辑"]),
    "ru": (["Добавь повторные попытки с экспоненциальной задержкой в", "Исправь ошибку на единицу в", "Напиши юнит-тесты для", "Отрефактори", "Ускорь"], ["HTTP-клиент", "парсер CSV", "middleware авторизации", "слой кэша", "обработчик платёжного вебхука", "эндпоинт поиска"]),
    "es": (["Añade reintentos con espera exponencial a", "Corrige el error de uno en", "Escribe tests unitarios para", "Refactoriza", "Acelera"], ["el cliente HTTP", "el parser de CSV", "el middleware de autenticación", "la capa de caché", "el manejador del webhook de pagos", "el endpoint de búsqueda"]),
}
FILES = ["src/{m}/client.py", "src/{m}/parser.ts", "pkg/{m}/handler.go", "lib/{m}.rb", "app/{m}/views.py", "src/{m}/mod.rs", "internal/{m}/cache.go", "src/main/java/com/acme/{M}Service.java"]
MODULES = ["billing", "search", "auth", "users", "orders", "reports", "sync", "ingest", "notify", "geo"]
PLANGS = ["Python 3.12", "TypeScript", "Go 1.22", "Rust", "Java 21", "Ruby 3.3"]
TOOL_NAMES = ["read_file", "edit_file", "run_tests", "bash", "search_code", "web_search", "python", "git_diff", "list_dir", "http_request", "sql_query", "browser_open"]

# ------------------------------------------------------------------ misc
FIELDS = {
    "en": ["organic chemistry", "contract law", "number theory", "distributed systems", "macroeconomics", "cell biology", "probability", "compilers", "linear algebra", "medical diagnosis", "tax accounting", "classical mechanics"],
    "zh": ["有机化学", "合同法", "数论", "分布式系统", "宏观经济学", "细胞生物学", "概率论", "编译原理", "线性代数", "医学诊断", "税务会计"],
    "ru": ["органическая химия", "договорное право", "теория чисел", "распределённые системы", "макроэкономика", "клеточная биология", "теория вероятностей", "компиляторы", "линейная алгебра"],
    "es": ["química orgánica", "derecho contractual", "teoría de números", "sistemas distribuidos", "macroeconomía", "biología celular", "probabilidad", "compiladores", "álgebra lineal"],
}
SUBJECTS = {
    "en": ["abstract algebra", "anatomy", "astronomy", "college chemistry", "computer security", "econometrics", "formal logic", "high school physics", "jurisprudence", "machine learning", "moral scenarios", "virology", "world religions", "professional medicine", "high school statistics"],
    "zh": ["抽象代数", "解剖学", "天文学", "大学化学", "计算机安全", "计量经济学", "形式逻辑", "高中物理", "法理学", "机器学习"],
    "ru": ["абстрактная алгебра", "анатомия", "астрономия", "химия", "компьютерная безопасность", "эконометрика", "формальная логика", "физика", "юриспруденция"],
    "es": ["álgebra abstracta", "anatomía", "astronomía", "química", "seguridad informática", "econometría", "lógica formal", "física", "jurisprudencia"],
}
ANSWER_FRAMES = {
    "en": ["The answer is {a}, because the rate doubles every step.", "x = {a} or x = {b}.", "It takes {a} days; more workers means proportionally less time.", "Probability is {a}/{b}.", "Yes, since it has no divisors other than 1 and itself.", "About {a}{b} units after rounding."],
    "zh": ["答案是{a}，因为每一步速率翻倍。", "x = {a} 或 x = {b}。", "需要{a}天，人越多时间越短。", "概率是{a}/{b}。"],
    "ru": ["Ответ {a}, потому что скорость удваивается.", "x = {a} или x = {b}.", "Нужно {a} дней.", "Вероятность {a}/{b}."],
    "es": ["La respuesta es {a}, porque la tasa se duplica.", "x = {a} o x = {b}.", "Se necesitan {a} días.", "La probabilidad es {a}/{b}."],
}
PERSONAS = {
    "en": ["DAN", "Professor Vex", "NOVA", "Dr. Lumen", "AIM", "Echo-9", "Grandma Rose"],
    "zh": ["DAN", "维克斯教授", "诺娃", "卢门博士", "回声九号", "罗斯奶奶"],
    "ru": ["DAN", "профессор Векс", "НОВА", "доктор Люмен", "Эхо-9", "бабушка Роза"],
    "es": ["DAN", "la profesora Vex", "NOVA", "la doctora Lumen", "Eco-9", "la abuela Rosa"],
}
COMPANIES = ["ShopWave", "Learnly", "Medibook", "Tripzy", "FinBright", "Cartly", "StudyOwl", "Brightdesk", "Nimbus Retail", "Quillpad"]


def _num(rng: random.Random) -> dict:
    return {
        "a": rng.randint(2, 97), "b": rng.randint(2, 60), "c": rng.randint(2, 40), "d": rng.randint(41, 160),
        "o": rng.randint(10000, 99999), "m": rng.randint(1, 9), "t": rng.randint(100, 99999), "h": rng.randint(5, 22),
    }


def build_fillers(seed: int, n_q: int = 6000, n_payload: int = 1500, n_doc: int = 1200) -> dict[str, dict[str, list[str]]]:
    """Return ``slot -> lang -> list of filler strings`` (deterministic for ``seed``)."""
    rng = random.Random(seed * 7919 + 17)
    out: dict[str, dict[str, list[str]]] = {}

    def per_lang(fn, n):
        return {lang: _unique([fn(lang) for _ in range(n)]) for lang in LANGS}

    def q(lang):
        f = rng.choice(Q_FRAMES[lang])
        return f.format(concept=rng.choice(CONCEPTS[lang]), **_num(rng))

    def payload(lang):
        a, b, c = PAYLOAD_PARTS[lang]
        sep = "" if lang == "zh" else " "
        return (rng.choice(a) + sep + rng.choice(b) + ("" if lang == "zh" else " ") + rng.choice(c)).format(
            p=rng.choice(PRODUCTS[lang]), o=rng.randint(100000, 999999))

    def doc(lang):
        n = _num(rng)
        return rng.choice(DOC_FRAMES[lang]).format(v=rng.choice(VENDORS), **{**n, "d": rng.randint(10, 28)})

    def task(lang):
        a, b = TASK_PARTS[lang]
        return rng.choice(a) + ("" if lang == "zh" else " ") + rng.choice(b)

    def answer(lang):
        return rng.choice(ANSWER_FRAMES[lang]).format(**_num(rng))

    def mcq(lang):
        stem = q(lang)
        n = _num(rng)
        opts = [str(n["a"]), str(n["b"]), str(n["c"]), str(n["d"])]
        return stem + "\n" + "\n".join(f"{k}) {v}" for k, v in zip("ABCD", opts))

    out["q"] = per_lang(q, n_q)
    out["payload"] = per_lang(payload, n_payload)
    out["doc"] = per_lang(doc, n_doc)
    out["task"] = per_lang(task, 400)
    out["answer"] = per_lang(answer, 600)
    out["mcq"] = per_lang(mcq, 2000)
    out["topic"] = {lang: list(TOPICS[lang]) for lang in LANGS}
    out["field"] = {lang: list(FIELDS[lang]) for lang in LANGS}
    out["subject"] = {lang: list(SUBJECTS[lang]) for lang in LANGS}
    out["persona"] = {lang: list(PERSONAS[lang]) for lang in LANGS}
    files = _unique([rng.choice(FILES).format(m=m, M=m.capitalize()) for m in MODULES for _ in range(6)])
    out["file"] = {lang: files for lang in LANGS}
    out["plang"] = {lang: list(PLANGS) for lang in LANGS}
    out["n"] = {lang: ["5", "8", "10", "12", "20", "25", "50", "100"] for lang in LANGS}
    tools = _unique([", ".join(rng.sample(TOOL_NAMES, rng.randint(3, 6))) for _ in range(80)])
    out["tools"] = {lang: tools for lang in LANGS}
    out["company"] = {lang: list(COMPANIES) for lang in LANGS}
    return out


def _unique(xs: list[str]) -> list[str]:
    return list(dict.fromkeys(xs))
