"""`escalade vapi provision`: creates or updates, in Vapi, the webhook credential, the `escalation` structured
output, the seed's `escalateToSupport` tool and the "TechCorp Support Assistant", from the routing policy
(see webhook_edge.provisioning).

    escalade vapi provision --server-url https://edge.example.com   # function tool + Live Call Control
    escalade vapi provision --dry-run                               # print the JSON, send nothing
    escalade vapi provision --tool-style transfer --server-url ...  # transferCall + destination request
    escalade vapi provision --auth bearer --server-url ...          # bearer credential instead of HMAC

Settings: ESCALADE_VAPI_API_URL (default https://api.vapi.ai), ESCALADE_VAPI_API_KEY (required unless
--dry-run), ESCALADE_VAPI_SECRET (else the dev secret in .escalade/webhook-secret), ESCALADE_POLICY, and the
HMAC options the edge verifies with: ESCALADE_VAPI_HMAC_ALGORITHM (sha256 | sha512 | sha1),
ESCALADE_VAPI_HMAC_ENCODING (hex | base64), ESCALADE_VAPI_HMAC_PREFIX, ESCALADE_VAPI_HMAC_SIGNATURE_HEADER,
ESCALADE_VAPI_HMAC_TIMESTAMP_HEADER (empty: no timestamp).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from pydantic import SecretStr

from escalade_cli.console import console, err_console, fail, settings_or_fail
from escalade_platform.settings import VapiApiSettings
from webhook_edge.settings import WebhookAuthSettings

if TYPE_CHECKING:
    from routing_service.domain.models import Policy

DEV_SECRET_FILE = Path(".escalade") / "webhook-secret"


class VapiCliSettings(VapiApiSettings, WebhookAuthSettings):
    """The `ESCALADE_*` settings the Vapi commands read."""

    policy: Path | None = None
    """Policy file whose teams' numbers and messages are provisioned (default: the checkout's example)."""


def webhook_secret(configured: SecretStr | None, dev_file: Path = DEV_SECRET_FILE) -> str | None:
    """ESCALADE_VAPI_SECRET, else the secret `escalade dev` keeps in .escalade/webhook-secret, else None."""
    if configured is not None and configured.get_secret_value().strip():
        return configured.get_secret_value().strip()
    try:
        text = dev_file.read_text().strip()
    except OSError:
        return None
    return text or None


def load_policy_readably(path: Path | None) -> Policy:
    """The routing policy (ESCALADE_POLICY, else examples/techcorp.yaml); a readable error when it is bad."""
    from escalade_platform.settings import default_policy_path
    from routing_service.policy.errors import PolicyError
    from routing_service.policy.loader import load_policy

    target = path if path is not None else default_policy_path()
    try:
        return load_policy(target)
    except PolicyError as exc:  # names the file, field and reason, one line per problem
        fail(f"bad policy: {exc}")
    except OSError as exc:
        fail(f"cannot read the policy {target}: {exc.strerror or exc}")


def provision_command(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the JSON that would be sent; send nothing.")
    ] = False,
    server_url: Annotated[
        str | None,
        typer.Option(
            "--server-url",
            help="Public base URL of the edge as Vapi reaches it (…/webhook/vapi is appended).",
        ),
    ] = None,
    tool_style: Annotated[
        str,
        typer.Option(
            "--tool-style",
            help="function: a function tool, the edge transfers through Live Call Control (default); "
            "transfer: the seed's dynamic transferCall tool answered by transfer-destination-request.",
        ),
    ] = "function",
    auth: Annotated[
        str,
        typer.Option(
            "--auth",
            help="hmac: a webhook credential signing each request (default, ESCALADE_VAPI_HMAC_* options); "
            "bearer: a credential sending Authorization: Bearer <secret>; header: the secret as the static "
            "X-Vapi-Secret header (no credential).",
        ),
    ] = "hmac",
    policy_file: Annotated[
        Path | None, typer.Option("--policy", help="Routing policy YAML (default ESCALADE_POLICY).")
    ] = None,
) -> None:
    """Create or update the escalateToSupport tool and the TechCorp Support Assistant in Vapi."""
    from webhook_edge.provisioning import (
        AuthKind,
        ProvisionConfig,
        ToolStyle,
        VapiProvisioningError,
        mask_secret,
        plan,
        provision,
    )

    try:
        style = ToolStyle(tool_style.strip().lower())
    except ValueError:
        fail(f"--tool-style must be one of: {', '.join(s.value for s in ToolStyle)} (got {tool_style!r})", 2)
    try:
        auth_kind = AuthKind(auth.strip().lower())
    except ValueError:
        fail(f"--auth must be one of: {', '.join(a.value for a in AuthKind)} (got {auth!r})", 2)
    settings = settings_or_fail(VapiCliSettings)
    try:
        hmac_options = settings.hmac_options()
    except ValueError as exc:
        fail(f"bad ESCALADE_VAPI_HMAC_* setting: {exc}", 2)
    secret = webhook_secret(settings.vapi_secret)
    api_key = settings.vapi_api_key.get_secret_value().strip()
    if not dry_run and not api_key:
        fail("ESCALADE_VAPI_API_KEY is not set: export your Vapi private API key (or use --dry-run)")
    if not dry_run and not server_url:
        fail("--server-url is required: the public URL where Vapi reaches the edge (e.g. an https tunnel)")
    if not dry_run and not secret:
        fail("no webhook secret: set ESCALADE_VAPI_SECRET (the edge rejects unauthenticated webhooks)")
    url = server_url or "http://127.0.0.1:3000"
    if not url.startswith(("http://", "https://")):
        fail(f"--server-url must be an http(s) URL (got {url!r})", 2)
    policy = load_policy_readably(policy_file or settings.policy)
    config = ProvisionConfig(
        server_url=url, secret=secret, tool_style=style, auth=auth_kind, hmac=hmac_options
    )

    if dry_run:
        notes = ["dry run: nothing is sent; each body is POSTed, or PATCHed when it already exists:"]
        if config.uses_credential:
            notes.append("credential: POST /credential (found by provider webhook and name).")
        notes.append("structuredOutput: POST /structured-output (found by name).")
        notes.append("tool: POST /tool (found by function name and type).")
        notes.append("assistant: POST /assistant (found by name).")
        if not server_url:
            notes.append("no --server-url given: using http://127.0.0.1:3000, which Vapi cannot reach.")
        if not secret:
            notes.append("no webhook secret (ESCALADE_VAPI_SECRET): the assistant would carry none.")
        for note in notes:
            err_console.print(f"[dim]{note}[/]", highlight=False)
        print(json.dumps(mask_secret(plan(policy, config), secret), indent=2, ensure_ascii=False))
        return

    try:
        result = provision(policy, config, api_url=settings.vapi_api_url, api_key=api_key)
    except VapiProvisioningError as exc:
        fail(str(mask_secret(str(exc), api_key)))
    if result.credential_id:
        console.print(
            f"credential Escalade webhook ({auth_kind.value}): {result.credential_action} "
            f"{result.credential_id}",
            soft_wrap=True,
            highlight=False,
        )
    console.print(
        f"structured output escalation: {result.structured_output_action} {result.structured_output_id}",
        soft_wrap=True,
        highlight=False,
    )
    console.print(
        f"tool escalateToSupport ({style.vapi_type}): {result.tool_action} {result.tool_id}",
        soft_wrap=True,
        highlight=False,
    )
    console.print(
        f"assistant TechCorp Support Assistant: {result.assistant_action} {result.assistant_id}",
        soft_wrap=True,
        highlight=False,
    )
    for tool_id in result.other_style_tool_ids:
        err_console.print(
            f"[yellow]note:[/] tool {tool_id} is an escalateToSupport tool of the other style, left in place"
        )
    for assistant_id in result.duplicate_assistant_ids:
        err_console.print(
            f"[yellow]note:[/] assistant {assistant_id} has the same name and was left unchanged"
        )


def register(app: typer.Typer) -> None:
    """Add `escalade vapi provision` to the `escalade` application."""
    vapi_app = typer.Typer(
        name="vapi",
        help="Set up the Vapi side (credential, structured output, tool, assistant).",
        no_args_is_help=True,
    )
    vapi_app.command("provision")(provision_command)
    app.add_typer(vapi_app, name="vapi")
