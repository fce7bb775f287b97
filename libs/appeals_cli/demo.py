"""`appeals demo`: a realistic stream of appeals from all four products and a small simulated
reviewer team, so a fresh `make run` shows the pipeline moving end to end."""

from __future__ import annotations

import asyncio
import itertools
import random
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from appeals_cli import reviewer, tokens

_DECIDED = re.compile(r"decided (ap_\w+):")


@dataclass(frozen=True)
class Sample:
    platform: str
    kind: str
    policy: str
    action: str
    automated: bool
    locale: str
    country: str
    statement: str


SAMPLES = (
    Sample("instagram", "post", "hate_speech", "removed", True, "de-DE", "DE",
           "Das war ein Zitat aus einem news-Artikel, keine Hassrede."),
    Sample("facebook", "account", "fake_account", "disabled", True, "en-US", "US",
           "This is my real account; I have used it for twelve years. It was a mistake."),
    Sample("whatsapp", "account", "spam", "banned", True, "pt-BR", "BR",
           "Eu só mando mensagens para a minha família e para o grupo da escola."),
    Sample("horizon", "avatar", "harassment", "restricted", False, "en-GB", "GB",
           "My avatar was restricted after a joke between friends in our own world."),
    Sample("instagram", "reel", "violence", "removed", True, "es-ES", "ES",
           "Es un clip de news sobre la guerra, para informar."),
    Sample("facebook", "post", "misinformation", "removed", False, "fr-FR", "FR",
           "C'est de la satire, clairement indiquée comme telle."),
    Sample("horizon", "vr_world", "sexual_content", "removed", True, "en-US", "US",
           "The world is a museum of classical sculpture."),
    Sample("whatsapp", "message", "spam", "removed", True, "hi-IN", "IN",
           "मैंने केवल अपने परिवार को संदेश भेजा था।"),
    Sample("facebook", "group", "dangerous_organizations", "removed", True, "ar-EG", "EG",
           "مجموعتنا لتوثيق الأحداث وليست لدعم أي منظمة."),
    Sample("instagram", "story", "bullying", "removed", True, "id-ID", "ID",
           "Itu hanya candaan dengan teman sekelas saya."),
    Sample("instagram", "comment", "hate_speech", "removed", True, "en-IE", "IE",
           "I was quoting the slur to condemn it, not using it."),
    Sample("facebook", "page", "impersonation", "disabled", False, "it-IT", "IT",
           "Sono il titolare del ristorante; la pagina è nostra."),
)  # fmt: skip

# The demo's reviewers register as readers of exactly the samples' languages, senior (so the
# escalation queues are worked too): the desk checks the mandatory language skill for them as
# for anyone, and a case in another language waits for a reviewer who reads it.
DEMO_REVIEWER = reviewer.skills_profile(
    sorted({sample.locale.split("-")[0] for sample in SAMPLES}), seniority="senior", capacity=1
)


def appeal_body(sample: Sample, rng: random.Random) -> dict[str, Any]:
    decided_at = datetime.now(UTC) - timedelta(hours=rng.randint(1, 240))
    return {
        "platform": sample.platform,
        "appellant": {"user_id": str(rng.randint(10**15, 10**17))},
        "subject": {"kind": sample.kind, "id": str(rng.randint(10**15, 10**18))},
        "decision": {
            "id": f"dec-{uuid.uuid4().hex[:8]}",
            "policy": sample.policy,
            "action": sample.action,
            "automated": sample.automated,
            "decided_at": decided_at.isoformat(),
            # Never one of the demo's reviewers: they may not review their own decisions.
            "decided_by": f"classifier:{sample.policy}" if sample.automated else "moderator-7",
        },
        "statement": sample.statement,
        "locale": sample.locale,
        "country": sample.country,
    }


async def _submit_all(
    intake_url: str, count: int, rate: float, seed: int | None
) -> list[tuple[str, str]]:
    rng = random.Random(seed)  # noqa: S311 - demo data, not security
    submitted = []
    surface_tokens = {
        p: tokens.surface_token(p) for p in ("facebook", "instagram", "whatsapp", "horizon")
    }
    async with httpx.AsyncClient(base_url=intake_url, timeout=15) as client:
        for sample in itertools.islice(itertools.cycle(SAMPLES), count):
            response = await client.post(
                "/v1/appeals",
                json=appeal_body(sample, rng),
                headers={
                    "Authorization": f"Bearer {surface_tokens[sample.platform]}",
                    "Idempotency-Key": uuid.uuid4().hex,
                },
            )
            response.raise_for_status()
            appeal_id = response.json()["appeal_id"]
            submitted.append((appeal_id, sample.platform))
            print(
                f"submitted {appeal_id}  {sample.platform} {sample.kind} ({sample.policy})",
                flush=True,
            )
            await asyncio.sleep(1 / rate)
    return submitted


async def run_demo(
    intake_url: str,
    desk_target: str,
    *,
    appeals: int,
    reviewers: int,
    rate: float,
    seed: int | None = None,
) -> None:
    team = [f"reviewer-{i + 1}" for i in range(reviewers)]
    # The reviewers work every open case (earlier runs may have left some); the demo ends when
    # each appeal it submitted is decided.
    decided: set[str] = set()
    ours: set[str] = set()
    done = asyncio.Event()

    def check_done() -> None:
        if len(ours) == appeals and ours <= decided:
            done.set()

    def count(line: str) -> None:
        found = _DECIDED.search(line)
        if found:
            decided.add(found.group(1))
        print(line, flush=True)
        check_done()

    def reporter(name: str) -> Callable[[str], None]:
        return lambda line: count(f"{name}: {line}")

    workers = [
        asyncio.create_task(
            reviewer.review(desk_target, tokens.agent_token(name, assistant=True), auto=True,
                            count=None, say=reporter(name), pause_s=0.3, profile=DEMO_REVIEWER)
        )
        for name in team
    ]  # fmt: skip
    submitted = await _submit_all(intake_url, appeals, rate, seed)
    ours.update(appeal_id for appeal_id, _ in submitted)
    check_done()
    try:
        await asyncio.wait_for(done.wait(), timeout=60 + appeals * 2)
    except TimeoutError:
        print(f"only {len(ours & decided)} of {appeals} decided in time; is routing running?")
    finally:
        for worker in workers:
            worker.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
    await asyncio.sleep(1.0)  # let the last decisions reach intake's status view
    headers = {"Authorization": f"Bearer {tokens.ops_token()}"}
    async with httpx.AsyncClient(base_url=intake_url, timeout=10, headers=headers) as client:
        print("\nappeal                          platform   status     outcome")
        for appeal_id, platform in submitted:
            view = (await client.get(f"/v1/appeals/{appeal_id}")).json()
            print(f"{appeal_id}  {platform:<10} {view['status']:<10} {view.get('outcome') or ''}")
