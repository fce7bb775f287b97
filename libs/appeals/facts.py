"""The pipeline's privacy rule, in code: what of an appeal may leave intake.

Intake is the only holder of the appellant's personal data: their user id on the platform, their
contact details, their statement and the links to what they attached. Everything that leaves
intake (lifecycle events, routing's cases, escalation packages, the audit log) carries the
appellant's keyed pseudonym and :func:`submission_facts` instead; a service that needs the
personal data for the task in hand asks intake for it (``Intake/GetAppealParticulars``, see
:mod:`appeals_runtime.intake_client`) and keeps no copy.
"""

from __future__ import annotations

from appeals.v1 import appeal_pb2


def submission_facts(submission: appeal_pb2.AppealSubmission) -> appeal_pb2.SubmissionFacts:
    """The non-personal facts of a submission.

    An allow-list, field by field: a personal field added to ``AppealSubmission`` later stays in
    intake until someone decides, here, that it may travel.
    """
    facts = appeal_pb2.SubmissionFacts(
        platform=submission.platform,
        locale=submission.locale,
        country=submission.country,
        appellant_role=submission.appellant.role,
    )
    if submission.HasField("subject"):
        facts.subject.CopyFrom(submission.subject)
    if submission.HasField("decision"):
        facts.decision.CopyFrom(submission.decision)
    if submission.HasField("signals"):
        signals = submission.signals
        facts.signals.account_reach = signals.account_reach
        facts.signals.vulnerable_user = signals.vulnerable_user
        if signals.HasField("legal_deadline"):
            facts.signals.legal_deadline.CopyFrom(signals.legal_deadline)
    return facts
