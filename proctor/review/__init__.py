"""After the exam: the review queue (risk score), one timeline per candidate, reviewers'
verdicts, the exam-room record and incident report, the supervision summary, exports.

Reviewers decide; the engine only proposes. Every decision and every look at the evidence
is written to the audit chain (proctor.evidence.chain)."""
