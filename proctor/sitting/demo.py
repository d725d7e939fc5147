"""The demo's content: two small question banks (a formal paper on electrical safety, and
an unrelated trial paper, as the documents require), their blueprints and the demo
sittings' rules. ``proctor demo`` builds the demo from this through the same domain code
the administration uses."""

from __future__ import annotations

from typing import Any

FORMAL_BANK = "demo-electrician-4"
TRIAL_BANK = "demo-trial-general"
OCCUPATION = "电工 Electrician"
LEVEL = "四级 Level 4"


def _single(qid: str, stem: str, options: list[str], answer: str, point: str) -> dict[str, Any]:
    return {
        "id": qid,
        "type": "single",
        "stem": stem,
        "options": options,
        "answer": answer,
        "knowledge_point": point,
        "occupation": OCCUPATION,
        "level": LEVEL,
        "difficulty": 2,
    }


def _multiple(
    qid: str, stem: str, options: list[str], answer: list[str], point: str
) -> dict[str, Any]:
    return {**_single(qid, stem, options, "A", point), "type": "multiple", "answer": answer}


def _tf(qid: str, stem: str, answer: bool, point: str) -> dict[str, Any]:
    return {
        "id": qid,
        "type": "true_false",
        "stem": stem,
        "answer": answer,
        "knowledge_point": point,
        "occupation": OCCUPATION,
        "level": LEVEL,
        "difficulty": 1,
    }


FORMAL_QUESTIONS: list[dict[str, Any]] = [
    _single(
        "E-S01",
        "发现有人触电，首先应当？ Someone is being electrocuted. What do you do first?",
        [
            "切断电源 Cut the power",
            "用手拉开 Pull them away by hand",
            "泼水 Pour water",
            "打电话 Make a phone call",
        ],
        "A",
        "安全用电 Safety",
    ),
    _single(
        "E-S02",
        "我国民用交流电的频率是？ The mains frequency in China is?",
        ["50 Hz", "60 Hz", "100 Hz", "220 Hz"],
        "A",
        "基础 Basics",
    ),
    _single(
        "E-S03",
        "安全电压的上限一般为？ The usual upper limit of a safety voltage is?",
        ["36 V", "110 V", "220 V", "380 V"],
        "A",
        "安全用电 Safety",
    ),
    _single(
        "E-S04",
        "测量电流应使用？ To measure a current, use?",
        [
            "电流表串联 An ammeter in series",
            "电流表并联 An ammeter in parallel",
            "电压表串联 A voltmeter in series",
            "兆欧表 A megger",
        ],
        "A",
        "仪表 Meters",
    ),
    _single(
        "E-S05",
        "导线绝缘层的颜色中，保护接地线（PE）为？ The protective earth (PE) wire is?",
        ["黄绿双色 Yellow-green", "红色 Red", "蓝色 Blue", "黑色 Black"],
        "A",
        "布线 Wiring",
    ),
    _single(
        "E-S06",
        "欧姆定律的表达式是？ Ohm's law is?",
        ["U = IR", "P = UI", "Q = CU", "F = ma"],
        "A",
        "基础 Basics",
    ),
    _single(
        "E-S07",
        "熔断器在电路中的作用是？ A fuse in a circuit provides?",
        [
            "短路保护 Short-circuit protection",
            "稳压 Voltage regulation",
            "滤波 Filtering",
            "计量 Metering",
        ],
        "A",
        "保护 Protection",
    ),
    _single(
        "E-S08",
        "电气设备着火时不能使用？ On an electrical fire, do not use?",
        [
            "水 Water",
            "二氧化碳灭火器 CO2 extinguisher",
            "干粉灭火器 Dry powder extinguisher",
            "沙土 Sand",
        ],
        "A",
        "安全用电 Safety",
    ),
    _single(
        "E-S09",
        "三相四线制中性线的作用是？ The neutral wire of a 3-phase 4-wire system?",
        [
            "使不对称负载电压对称 Keeps phase voltages balanced",
            "提高功率因数 Raises power factor",
            "降低电流 Lowers current",
            "防雷 Lightning protection",
        ],
        "A",
        "基础 Basics",
    ),
    _single(
        "E-S10",
        "万用表使用完毕，转换开关应置于？ After use, set a multimeter to?",
        [
            "交流电压最高挡或OFF Highest AC voltage or OFF",
            "电阻挡 Ohms",
            "电流挡 Current",
            "任意挡 Any range",
        ],
        "A",
        "仪表 Meters",
    ),
    _single(
        "E-S11",
        "漏电保护器的额定动作电流（人身保护）一般不大于？ An RCD for personal "
        "protection trips at no more than?",
        ["30 mA", "100 mA", "300 mA", "1 A"],
        "A",
        "保护 Protection",
    ),
    _single(
        "E-S12",
        "停电检修时，验电后应立即？ After testing for absence of voltage, at once?",
        [
            "装设接地线 Fit earthing leads",
            "合闸 Close the switch",
            "离开现场 Leave the site",
            "拆除警示牌 Remove warning signs",
        ],
        "A",
        "安全用电 Safety",
    ),
    _multiple(
        "E-M01",
        "属于绝缘安全用具的是？（多选） Insulating safety equipment includes?",
        [
            "绝缘手套 Insulating gloves",
            "铁锤 Hammer",
            "绝缘靴 Insulating boots",
            "铜线 Copper wire",
        ],
        ["A", "C"],
        "安全用电 Safety",
    ),
    _multiple(
        "E-M02",
        "造成短路的原因可能有？（多选） Causes of a short circuit may be?",
        [
            "绝缘损坏 Damaged insulation",
            "接线错误 Wrong wiring",
            "负载过轻 Too light a load",
            "导线相碰 Conductors touching",
        ],
        ["A", "B", "D"],
        "保护 Protection",
    ),
    _multiple(
        "E-M03",
        "停电作业的技术措施包括？（多选） Technical measures for dead work?",
        [
            "停电 Disconnect",
            "验电 Test for voltage",
            "装设接地线 Earth it",
            "悬挂标示牌 Hang signs",
        ],
        ["A", "B", "C", "D"],
        "安全用电 Safety",
    ),
    _multiple(
        "E-M04",
        "下列属于导体的是？（多选） Which are conductors?",
        ["铜 Copper", "橡胶 Rubber", "铝 Aluminium", "陶瓷 Ceramic"],
        ["A", "C"],
        "基础 Basics",
    ),
    _multiple(
        "E-M05",
        "电动机过热的可能原因有？（多选） A motor may overheat because of?",
        [
            "过载 Overload",
            "缺相运行 A missing phase",
            "通风不良 Poor ventilation",
            "电压正常 Normal voltage",
        ],
        ["A", "B", "C"],
        "电机 Motors",
    ),
    _multiple(
        "E-M06",
        "兆欧表可用于测量？（多选） A megger measures?",
        [
            "绝缘电阻 Insulation resistance",
            "电缆绝缘 Cable insulation",
            "电流 Current",
            "频率 Frequency",
        ],
        ["A", "B"],
        "仪表 Meters",
    ),
    _tf(
        "E-T01",
        "湿手可以操作电气开关。 Switches may be operated with wet hands.",
        False,
        "安全用电 Safety",
    ),
    _tf(
        "E-T02",
        "电流表内阻越小越好。 The smaller an ammeter's resistance, the better.",
        True,
        "仪表 Meters",
    ),
    _tf(
        "E-T03",
        "保险丝可以用铜丝代替。 A fuse may be replaced by copper wire.",
        False,
        "保护 Protection",
    ),
    _tf(
        "E-T04",
        "并联电路中各支路电压相等。 Branches in parallel share the same voltage.",
        True,
        "基础 Basics",
    ),
    _tf(
        "E-T05",
        "带电作业时可以不穿绝缘鞋。 Live work may be done without insulating shoes.",
        False,
        "安全用电 Safety",
    ),
    _tf(
        "E-T06",
        "接地电阻越小越好。 The lower the earthing resistance, the better.",
        True,
        "保护 Protection",
    ),
    _tf(
        "E-T07",
        "三相异步电动机可以缺相长期运行。 A 3-phase motor may run long on 2 phases.",
        False,
        "电机 Motors",
    ),
    _tf("E-T08", "功率的单位是瓦特。 Power is measured in watts.", True, "基础 Basics"),
    _tf(
        "E-T09",
        "验电前应先在有电设备上试验验电器。 Test the tester on a live part first.",
        True,
        "安全用电 Safety",
    ),
    _tf(
        "E-T10", "电压表应串联在电路中。 A voltmeter is connected in series.", False, "仪表 Meters"
    ),
    _tf(
        "E-T11",
        "剩余电流保护器能防止所有触电事故。 An RCD prevents every electric shock.",
        False,
        "保护 Protection",
    ),
    _tf(
        "E-T12",
        "交流电的有效值是最大值的1/√2。 The RMS of a sine is its peak over √2.",
        True,
        "基础 Basics",
    ),
    {
        "id": "E-Q01",
        "type": "short",
        "stem": "简述保护接地的作用。 Explain what protective earthing is for.",
        "answer": "使设备外壳在绝缘损坏时保持低电位，防止人身触电；并使保护装置动作。 Keeps "
        "exposed metal near earth potential when insulation fails, so that nobody gets a "
        "shock, and lets the protection trip.",
        "knowledge_point": "保护 Protection",
        "occupation": OCCUPATION,
        "level": LEVEL,
        "difficulty": 3,
    },
    {
        "id": "E-Q02",
        "type": "short",
        "stem": "简述停电检修的安全步骤。 List the safety steps before working on a dead circuit.",
        "answer": "停电、验电、装设接地线、悬挂标示牌和装设遮栏。 Disconnect, test for voltage, "
        "earth and short-circuit, put up signs and barriers.",
        "knowledge_point": "安全用电 Safety",
        "occupation": OCCUPATION,
        "level": LEVEL,
        "difficulty": 3,
    },
]

TRIAL_QUESTIONS: list[dict[str, Any]] = (
    [
        _single(f"G-S{i:02d}", stem, options, "A", "常识 General")
        for i, (stem, options) in enumerate(
            [
                ("一年有几个月？ How many months has a year?", ["12", "10", "11", "13"]),
                (
                    "水的沸点（标准大气压）是？ Water boils at (1 atm)?",
                    ["100 °C", "90 °C", "80 °C", "120 °C"],
                ),
                (
                    "中国的首都是？ The capital of China is?",
                    ["北京 Beijing", "上海 Shanghai", "广州 Guangzhou", "深圳 Shenzhen"],
                ),
                ("一小时有多少分钟？ Minutes in an hour?", ["60", "100", "30", "24"]),
                ("彩虹有几种颜色？ How many colours has a rainbow?", ["7", "5", "6", "8"]),
                ("2 + 3 × 4 = ?", ["14", "20", "24", "9"]),
                (
                    "地球绕什么转？ The Earth orbits?",
                    ["太阳 The Sun", "月球 The Moon", "火星 Mars", "金星 Venus"],
                ),
                ("一周有几天？ Days in a week?", ["7", "5", "6", "8"]),
                (
                    "最大的海洋是？ The largest ocean is?",
                    ["太平洋 Pacific", "大西洋 Atlantic", "印度洋 Indian", "北冰洋 Arctic"],
                ),
                (
                    "光速约为？ The speed of light is about?",
                    ["30万 km/s 300,000 km/s", "3万 km/s", "300 km/s", "3000 km/s"],
                ),
                ("正方形有几条边？ A square has how many sides?", ["4", "3", "5", "6"]),
                (
                    "植物光合作用吸收？ Photosynthesis takes in?",
                    ["二氧化碳 Carbon dioxide", "氧气 Oxygen", "氮气 Nitrogen", "氢气 Hydrogen"],
                ),
            ],
            start=1,
        )
    ]
    + [
        _multiple(f"G-M{i:02d}", stem, options, answer, "常识 General")
        for i, (stem, options, answer) in enumerate(
            [
                ("下列是偶数的有？ Which are even?", ["2", "3", "4", "5"], ["A", "C"]),
                (
                    "下列是哺乳动物的有？ Which are mammals?",
                    ["猫 Cat", "鲸 Whale", "鲨鱼 Shark", "鹰 Eagle"],
                    ["A", "B"],
                ),
                (
                    "下列是行星的有？ Which are planets?",
                    ["火星 Mars", "月球 The Moon", "木星 Jupiter", "太阳 The Sun"],
                    ["A", "C"],
                ),
                (
                    "下列是颜色的有？ Which are colours?",
                    ["红 Red", "快 Fast", "蓝 Blue", "高 Tall"],
                    ["A", "C"],
                ),
                (
                    "下列是水果的有？ Which are fruit?",
                    ["苹果 Apple", "土豆 Potato", "香蕉 Banana", "白菜 Cabbage"],
                    ["A", "C"],
                ),
                ("下列大于10的数有？ Which are above 10?", ["12", "9", "11", "3"], ["A", "C"]),
            ],
            start=1,
        )
    ]
    + [
        _tf(f"G-T{i:02d}", stem, answer, "常识 General")
        for i, (stem, answer) in enumerate(
            [
                ("太阳从东方升起。 The sun rises in the east.", True),
                ("一米等于一百厘米。 A metre is 100 centimetres.", True),
                ("冰比水重。 Ice is heavier than the same volume of water.", False),
                ("鱼用肺呼吸。 Fish breathe with lungs.", False),
                ("三角形内角和为180度。 A triangle's angles add up to 180°.", True),
                ("月球自己会发光。 The Moon makes its own light.", False),
                ("一天有24小时。 A day has 24 hours.", True),
                ("0是正数。 Zero is positive.", False),
                ("水由氢和氧组成。 Water is hydrogen and oxygen.", True),
                ("企鹅生活在北极。 Penguins live at the North Pole.", False),
                ("声音在真空中不能传播。 Sound does not travel in a vacuum.", True),
                ("铁在常温下是液体。 Iron is liquid at room temperature.", False),
            ],
            start=1,
        )
    ]
)

#: 10 single x 4 + 5 multiple x 6 + 10 true/false x 2 + 1 short x 10 = 100
FORMAL_BLUEPRINT: dict[str, Any] = {
    "bank": FORMAL_BANK,
    "occupation": OCCUPATION,
    "level": LEVEL,
    "sections": [
        {"type": "single", "count": 10, "points": 4},
        {"type": "multiple", "count": 5, "points": 6},
        {"type": "true_false", "count": 10, "points": 2},
        {"type": "short", "count": 1, "points": 10},
    ],
}

#: objective only, so that the trial's score shows as soon as it is handed in
TRIAL_BLUEPRINT: dict[str, Any] = {
    "bank": TRIAL_BANK,
    "sections": [
        {"type": "single", "count": 10, "points": 5},
        {"type": "multiple", "count": 5, "points": 6},
        {"type": "true_false", "count": 10, "points": 2},
    ],
}

#: the demo's sittings keep the documents' rules except the earliest hand-in, so that a
#: newcomer can run a paper to its score within minutes
DEMO_FLOW: dict[str, dict[str, Any]] = {
    "formal": {"earliest_submit_minutes": 2},
    "trial": {"earliest_submit_minutes": 1},
    "device_check": {},
}
