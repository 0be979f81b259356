"""`busymate devices simulate NAME`: a simulated phone on the device contract (busymate.device_client).

It pairs as the device NAME (which must exist: it creates nothing), keeps the credential 0600 under
.busymate/simulated/<name>.json, goes online, heartbeats, and prints one line for each event it receives on
`device:<uuid>`, answering as the iOS app would: `vpn-on`/`vpn-off` report vpn_state on/off, `open-sheet` and
`live-activity-message` are shown, `cdp-command` is refused ("a phone has no DevTools") except
`Runtime.evaluate` of plain arithmetic, which it computes (so the dashboard's CDP path can be tried end to
end), and `unpair` forgets the credential and stops. Ctrl-C writes it offline. docs/devices.md describes the
contract.
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import json
import operator
import re
import signal
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from busymate.api_core import ApiRefused, ApiUnreachable
from busymate.cli.common import friendly, settings_from
from busymate.cli.devices import _api, app, find_device
from busymate.device_client import (
    DeviceClient,
    DeviceCredential,
    DeviceHandlers,
    DeviceUnpaired,
    forget_credential,
    load_credential,
    pair,
    save_credential,
)
from busymate.errors import BusymateError
from busymate.settings import Settings

NO_DEVTOOLS = "a phone has no DevTools (the simulator evaluates only Runtime.evaluate of arithmetic)"
ARITHMETIC = re.compile(r"[0-9+\-*/%(). \t]{1,200}")
_OPS: dict[type, Any] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.Mod: operator.mod,
    ast.FloorDiv: operator.floordiv,
    ast.USub: operator.neg,
    ast.UAdd: operator.pos,
}


def say(line: str) -> None:
    """One line on stdout, at once (a test or a `| grep` reads it live)."""
    print(line, flush=True)


def credential_file(settings: Settings, name: str) -> Path:
    """Where the simulated device's credential is kept."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "device"
    return settings.state_dir / "simulated" / f"{safe}.json"


def arithmetic(expression: str) -> int | float:
    """The value of plain arithmetic (numbers, + - * / % //, parentheses); ValueError for anything else."""
    if not ARITHMETIC.fullmatch(expression):
        raise ValueError(NO_DEVTOOLS)

    def walk(node: ast.AST) -> int | float:
        if isinstance(node, ast.Expression):
            return walk(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
            return node.value
        if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
            left, right = walk(node.left), walk(node.right)
            if isinstance(node.op, ast.Mult) and abs(left) * abs(right) > 1e300:
                raise ValueError("a number too large for a phone")
            return _OPS[type(node.op)](left, right)  # type: ignore[no-any-return]
        if isinstance(node, ast.UnaryOp) and type(node.op) in _OPS:
            return _OPS[type(node.op)](walk(node.operand))  # type: ignore[no-any-return]
        raise ValueError(NO_DEVTOOLS)

    try:
        return walk(ast.parse(expression.strip(), mode="eval"))
    except (SyntaxError, ZeroDivisionError, OverflowError) as exc:
        raise ValueError(f"cannot evaluate {expression!r}: {exc}") from exc


def evaluate(method: str, params: dict[str, Any]) -> dict[str, Any]:
    """What the simulated phone answers a CDP command: Runtime.evaluate of arithmetic, shaped as CDP's."""
    expression = params.get("expression")
    if method != "Runtime.evaluate" or not isinstance(expression, str):
        raise ValueError(NO_DEVTOOLS)
    value = arithmetic(expression)
    return {"result": {"type": "number", "value": value, "description": str(value)}}


class Phone:
    """The simulated app: prints what it receives and answers as the app would."""

    def __init__(self) -> None:
        self.client: DeviceClient | None = None

    async def on_vpn(self, on: bool) -> None:
        state = "on" if on else "off"
        say(f"vpn-{state}: the VPN is {'connected' if on else 'disconnected'} (vpn_state {state})")
        if self.client is not None:
            await self.client.report(vpn_state=state)

    def on_open_sheet(self, sheet: str, payload: dict[str, Any]) -> None:
        extra = f" {payload['pac_url']} (port {payload.get('proxy_port')})" if "pac_url" in payload else ""
        say(f"open-sheet: {sheet} {'opened' if payload.get('open', True) else 'closed'}{extra}")

    def on_live_activity_message(self, text: str | None) -> None:
        say(f"live-activity-message: {json.dumps(text)}" if text else "live-activity-message: cleared")

    def on_cdp_command(self, command: str, method: str, params: dict[str, Any], session: str | None) -> Any:
        try:
            result = evaluate(method, params)
        except ValueError as exc:
            say(f"cdp-command {command}: {method} refused: {exc}")
            raise
        say(f"cdp-command {command}: {method} {params.get('expression')!r} -> {result['result']['value']}")
        return result

    def on_settings(self, settings: dict[str, Any]) -> None:
        say(f"settings: {json.dumps(settings, sort_keys=True)}")

    def on_unpair(self) -> None:
        say("unpair: the credential is forgotten; back to the activation screen")

    def on_state(self, state: str, detail: str) -> None:
        if state in ("disconnected", "rejoined"):
            say(f"realtime: {state}{f' ({detail})' if detail else ''}")

    def handlers(self) -> DeviceHandlers:
        return DeviceHandlers(
            on_unpair=self.on_unpair,
            on_vpn=self.on_vpn,
            on_open_sheet=self.on_open_sheet,
            on_live_activity_message=self.on_live_activity_message,
            on_cdp_command=self.on_cdp_command,
            on_settings=self.on_settings,
            on_state=self.on_state,
        )


def _fresh_code(settings: Settings, name: str) -> tuple[dict[str, Any], str]:
    """The device and a new activation code for it, as `busymate devices pair` makes one (as the admin)."""
    with _api(settings) as api:
        device = find_device(api, name)
        activation = api.rpc(
            "issue_device_activation", {"device_uuid": device["uuid"], "valid_for": "5 minutes"}
        )
    return device, str(activation["code"])


async def _pair(settings: Settings, code: str, file: Path) -> DeviceCredential:
    try:
        cred = await pair(settings.url, settings.anon_key, code, info={"model": "simulated phone"})
    except ApiRefused as exc:
        raise BusymateError(
            f"pairing failed: {exc.message or exc.code}; get a new code with `busymate devices pair NAME`"
        ) from exc
    save_credential(file, cred)
    return cred


async def _run(settings: Settings, name: str, code: str | None, heartbeat: float) -> int:
    file = credential_file(settings, name)
    cred = None if code else load_credential(file)
    if cred is not None and name not in (cred.name, cred.device_uuid):
        cred = None  # the file of another device with a similar name
    phone = Phone()
    client: DeviceClient | None = None
    for attempt in range(2):
        if cred is None:
            if code is None:
                device, fresh = await asyncio.to_thread(_fresh_code, settings, name)
                code = fresh
                say(f"pairing {device['name']} ({device['uuid']}) (a new code: earlier tokens stop working)")
            cred = await _pair(settings, code, file)
            code = None
        client = DeviceClient(cred, phone.handlers(), heartbeat_every=heartbeat, credential_path=file)
        phone.client = client
        try:
            await client.start()
            break
        except DeviceUnpaired as exc:
            say(f"the saved credential no longer works ({exc}); pairing again")
            cred = None
            if attempt:
                raise
    if client is None or cred is None:
        raise BusymateError(f"could not pair as {name}")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    say(
        f"simulating {cred.name} ({cred.device_uuid}) as a phone: online, heartbeat every {heartbeat:g} s; "
        "Ctrl-C to stop"
    )
    stopper = asyncio.create_task(stop.wait())
    ended = asyncio.create_task(client.wait_closed())
    await asyncio.wait({stopper, ended}, return_when=asyncio.FIRST_COMPLETED)
    stopper.cancel()
    if not ended.done():
        await client.close()
        ended.cancel()
        say(f"stopped: {cred.name} is offline")
        return 0
    say(f"stopped: {cred.name} was {client.stop_reason}")
    return 0


@app.command("simulate")
@friendly
def simulate(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The device to act as (name or uuid); it must exist.")],
    code: Annotated[
        str | None,
        typer.Option("--code", help="Pair with this activation code (default: make one, as admin)."),
    ] = None,
    heartbeat: Annotated[
        float, typer.Option("--heartbeat", min=1.0, help="Seconds between heartbeats.")
    ] = 30.0,
    forget: Annotated[
        bool, typer.Option("--forget", help="Forget the saved credential first (pair anew).")
    ] = False,
) -> None:
    """Run a simulated phone as device NAME: print each command it receives and answer as the app would."""
    settings = settings_from(ctx)
    if forget:
        forget_credential(credential_file(settings, name))
    try:
        code_exit = asyncio.run(_run(settings, name, code, heartbeat))
    except (ApiUnreachable, TimeoutError, OSError) as exc:
        raise BusymateError(
            f"{exc or type(exc).__name__}: is the API at {settings.url} running? (`busymate status`)"
        ) from exc
    sys.exit(code_exit)
