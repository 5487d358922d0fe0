"""The API's request and response models, and the one JSON schema of an answer.

`AnswerModel` describes the object `Answer.to_json()` builds, which is what `qa ask --json`
prints and `POST /ask` returns; the API uses it as its response model, and the tests validate the
CLI's output and the API's against it. Every model forbids unknown keys, so a field added to one
side only fails the tests.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from qa import config
from qa.retrieve.fusion import DEFAULT_MODE, MODES
from qa.retrieve.searcher import MAX_K

MAX_QUESTION_CHARS = config.MAX_QUESTION_CHARS  # longer ones are cut, as `qa ask` cuts them
MAX_PATTERNS = 50  # `doc` patterns per question
MAX_PATTERN_CHARS = 1000

Mode = Literal[MODES]  # type: ignore[valid-type]
Pattern = Annotated[str, Field(min_length=1, max_length=MAX_PATTERN_CHARS)]
Span = Annotated[list[int], Field(min_length=2, max_length=2)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class AskRequest(_Strict):
    """The body of `POST /ask`."""

    question: str = Field(
        min_length=1,
        description=f"the question, in plain words (cut to its first {MAX_QUESTION_CHARS} "
        "characters, as `qa ask` cuts it; `truncated` says so)",
        examples=["What causes chronic mid back pain?"],
    )
    k: int = Field(5, ge=1, le=MAX_K, description="how many passages to return")
    mode: Mode = Field(
        DEFAULT_MODE,
        description="retrieval: dense (meaning), lexical (BM25 words) or hybrid (both)",
    )
    doc: Pattern | Annotated[list[Pattern], Field(max_length=MAX_PATTERNS)] | None = Field(
        None,
        description="answer only from documents whose path or file name matches this glob "
        "(or any of these globs), as `qa ask --doc`",
    )


class HitModel(_Strict):
    """One passage of an answer (see `qa.retrieve.results.Hit`)."""

    rank: int = Field(description="1 for the best passage")
    score: float = Field(description="higher is better; its scale depends on the mode")
    doc: str = Field(description="document path relative to the corpus folder")
    title: str
    section: str | None = Field(description="the heading the passage stands under")
    page: int | None = Field(description="1-based page of a PDF, else null")
    start: int = Field(description="character offset of the passage in the loaded text")
    end: int
    source_start: int | None = Field(description="offset in the file's text (.txt, .md)")
    source_end: int | None
    text: str = Field(description="the passage")
    highlights: list[Span] = Field(
        description="[start, end] offsets into `text` of the sentences that best answer"
    )
    confidence: float = Field(
        description="the calibrated probability that this passage answers the question "
        "(never above the answer's)"
    )


class AnswerModel(_Strict):
    """The answer to one question: what `qa ask --json` prints and `POST /ask` returns."""

    question: str = Field(description="the question, as asked")
    answered: bool = Field(
        description="false when the documents do not seem to cover the "
        "question; the hits are then only the closest passages"
    )
    confidence: float = Field(
        description="the calibrated probability that the documents answer the question; "
        "`answered` is exactly `confidence >= threshold` (`qa info` states the threshold)"
    )
    missing_terms: list[str] = Field(
        description="the question's key words that appear nowhere in the documents "
        "(empty when none; looked for in English questions)"
    )
    mode: Mode
    truncated: bool = Field(description="whether the question was cut to the model's window")
    hits: list[HitModel]


class DocumentModel(_Strict):
    path: str
    title: str
    kind: str
    pages: int | None
    chunks: int


class DocumentsModel(_Strict):
    """`GET /documents`: what the index holds."""

    generation: str = Field(description="the index build answers come from")
    documents: list[DocumentModel]


class HealthModel(_Strict):
    """`GET /health`: whether the server answers, and from which index build."""

    status: Literal["ok"]
    generation: str = Field(description="the index build answers come from")
    built_at: str
    model: str
    backend: str
    documents: int
    chunks: int
    stale: bool = Field(description="documents changed since the build (or another model)")
    stale_checked: bool = Field(description="false when the corpus folder cannot be read")
    refresh_error: str | None = Field(description="why a newer build could not be loaded")


class ErrorModel(_Strict):
    """Every error: one line of what went wrong, and what to do about it."""

    error: str
    hint: str
