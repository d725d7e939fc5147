"""How an invigilator handles a candidate's violation (考生违规违纪处理), as the documents
name it (../shared/docs/DOMAIN.md and the source notices): a warning first (给予警告, the
exam goes on); then the paper voided (试卷作废), this sitting's score cancelled (取消本场考试
成绩) or the candidate disqualified (取消考试资格) — each of these ends the exam at once."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Category:
    code: str
    zh: str
    en: str
    #: whether the candidate's exam ends at once
    ends_exam: bool
    #: the score the ended paper keeps: "zero" (voided: counts as 0) or "none" (no score)
    score: str | None = None

    @property
    def title(self) -> str:
        return f"{self.zh} {self.en}"


CATEGORIES: dict[str, Category] = {
    c.code: c
    for c in (
        Category("warning", "警告", "Warning", ends_exam=False),
        Category("paper_voided", "试卷作废", "Paper voided", ends_exam=True, score="zero"),
        Category(
            "score_cancelled",
            "取消本场考试成绩",
            "Score of this sitting cancelled",
            ends_exam=True,
            score="none",
        ),
        Category(
            "disqualified",
            "取消考试资格",
            "Disqualified and removed",
            ends_exam=True,
            score="none",
        ),
    )
}


def title_of(code: str | None) -> str | None:
    category = CATEGORIES.get(code or "")
    return category.title if category else None


def as_list() -> list[dict[str, object]]:
    return [
        {"code": c.code, "zh": c.zh, "en": c.en, "title": c.title, "ends_exam": c.ends_exam}
        for c in CATEGORIES.values()
    ]
