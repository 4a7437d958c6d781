"""Render the profile registry as a Markdown table, so docs/profiles.md cannot drift from the code."""

from __future__ import annotations

from pki.profiles import all_profiles
from pki.profiles.base import CertKind, Profile


def _usage(p: Profile) -> str:
    ku = p.key_usage
    names = [
        n
        for n, on in (
            ("digitalSignature", ku.digital_signature),
            ("nonRepudiation", ku.content_commitment),
            ("keyEncipherment", ku.key_encipherment),
            ("keyAgreement", ku.key_agreement),
            ("keyCertSign", ku.key_cert_sign),
            ("cRLSign", ku.crl_sign),
        )
        if on
    ]
    text = ", ".join(names)
    if p.kind.value in ("station-client", "csms-server"):
        text += " + keyEncipherment (RSA) / keyAgreement (EC)"
    return text


def markdown_table() -> str:
    head = (
        "| kind | generation | CA / pathLen | keyUsage (critical) | EKU | DC | keys | validity default / max (days) "
        "| max DER | AIA | CRL DP | CN rule | issued by |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|\n"
    )
    rows = []
    order = {kind: i for i, kind in enumerate(CertKind)}
    for p in sorted(all_profiles(), key=lambda p: (p.generation.value, order[p.kind])):
        ca = ("root" if p.is_root else f"CA / {p.path_length}") if p.is_ca else "leaf"
        eku = ", ".join(getattr(o, "_name", o.dotted_string) for o in p.extended_key_usage) or "-"
        keys = ", ".join(sorted(a.value for a in p.key_algorithms))
        rows.append(
            f"| {p.kind.value} | {p.generation.value} | {ca} | {_usage(p)} | {eku} | {p.domain_component or '-'} "
            f"| {keys} | {p.default_validity_days} / {p.max_validity_days} | {p.max_der_size or '-'} "
            f"| {'yes' if p.aia and not p.is_root else 'no'} | {'yes' if p.crl_distribution_point else 'no'} "
            f"| {p.cn_rule.value} | {p.issuer_kind.value if p.issuer_kind else 'self'} |"
        )
    return head + "\n".join(rows) + "\n"
