"""OCPP endpoint benchmark: idle station connections held by one process, and a SignCertificate burst.

    .venv/bin/python bench/bench_ocpp.py [--connections 10000] [--burst 1000] [--ws websockets-sansio|wsproto]

1. Starts pnc-pki (uvicorn, one process, the chosen WebSocket implementation) on a fresh SQLite data dir with the
   development PKI, registers the stations, and opens ``--connections`` authenticated OCPP 2.0.1 WebSockets
   (each does one Heartbeat round trip). Reports server RSS per connection and handshakes per second.
2. While those stay connected, ``--burst`` of them (the `ocpp` package's ChargePoint) send SignCertificate at the
   same moment; reports Accepted answers/s and CSRs signed/s (until every CertificateSigned arrived).
3. In the same run, the raw crypto limit on one core: CSR load + proof-of-possession check + certificate build and
   P-256 signature with cryptography alone, no database, no network.
4. The reference for the connection figures, in the same run: a bare ASGI WebSocket server on the same uvicorn
   implementation and compression mode (accepts ocpp2.0.1, answers each CALL with an empty CALLRESULT, keeps no
   state) holding the same number of connections from the same client. ``rss_vs_bare_websocket`` = pnc-pki's RSS
   per connection / the bare server's: what pnc-pki's own per-station state costs on top of the WebSocket itself.

Bounded: every phase has a timeout (``--time-limit``). Client and server share the machine's cores.
Station passwords use scrypt n=2^10 here (the registry default is 2^14, ~40 ms per handshake): the benchmark
measures connections, not the KDF; the KDF cost per handshake is reported separately.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import datetime as dt
import hashlib
import json
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PASSWORD = "bench-station-password-0123"  # noqa: S105 - benchmark-only station secret


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of ``pid``, all its threads (the scrypt KDF runs outside the GIL)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def raise_fd_limit() -> int:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # `ulimit -n <hard>` for us and our children
    return hard


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def settings_for(data_dir: Path) -> Any:
    from api.settings import Settings

    return Settings(data_dir=data_dir, key_passphrase="bench-pass", with_iso15118_20=False,  # noqa: S106
                    organization="Bench CPO", country="DE")


# --- setup and server (child process) -------------------------------------------------------------------------


def prepare(data_dir: Path, count: int) -> None:
    from sqlmodel import Session

    from api.context import bootstrap, build_services
    from pki import stations
    from pki.store.ocpp_models import OcppStation

    svc = build_services(settings_for(data_dir))
    bootstrap(svc)
    password_hash = stations.hash_password(PASSWORD, n=2**10)
    with Session(svc.db.engine) as s:
        for i in range(count):
            s.add(OcppStation(station_id=f"B{i:05d}", serial_number=f"SN-B{i:05d}", organization="Bench CPO",
                              secc_ids=json.dumps([f"DE*PNC*E{i:05d}*1"]), password_hash=password_hash))
        s.commit()
    svc.close()


def serve(data_dir: Path, port: int, ws: str, compression: str = "stateless") -> None:
    import uvicorn

    from api.app import create_app
    from api.context import build_services
    from api.ocpp.runtime import OcppRuntime
    from api.ocpp.settings import OcppSettings
    from api.ocpp.ws_protocol import uvicorn_ws_options

    # what `pnc serve` runs (PNC_OCPP_WS_COMPRESSION) unless another uvicorn implementation is asked for
    ws_options = uvicorn_ws_options(compression) if ws == "websockets-sansio" else {"ws": ws}
    svc = build_services(settings_for(data_dir))
    app = create_app(services=svc)
    app.state.ocpp = OcppRuntime(svc, OcppSettings(call_timeout=120, outbox_tick=5))
    uvicorn.run(app, host="127.0.0.1", port=port, **ws_options, log_level="error", backlog=4096, ws_ping_interval=None,
                lifespan="on")


def serve_bare(port: int, ws: str, compression: str) -> None:
    """The reference server: the same uvicorn WebSocket stack and compression as ``serve``, no OCPP, no state."""
    import uvicorn

    from api.ocpp.ws_protocol import uvicorn_ws_options

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                await send({"type": message["type"] + ".complete"})
                if message["type"] == "lifespan.shutdown":
                    return
        if scope["type"] != "websocket":
            return
        await receive()  # websocket.connect
        await send({"type": "websocket.accept", "subprotocol": "ocpp2.0.1"})
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                return
            unique_id = json.loads(message.get("text") or "[0, \"\"]")[1]
            await send({"type": "websocket.send", "text": json.dumps([3, unique_id, {}])})

    ws_options = uvicorn_ws_options(compression) if ws == "websockets-sansio" else {"ws": ws}
    uvicorn.run(app, host="127.0.0.1", port=port, **ws_options, log_level="error", backlog=4096,
                ws_ping_interval=None, lifespan="on")


# --- clients (bench process) ---------------------------------------------------------------------------------


def auth(station_id: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{station_id}:{PASSWORD}".encode()).decode()}


async def open_idle(url: str, ids: list[str], concurrency: int) -> list[Any]:
    import websockets

    sem = asyncio.Semaphore(concurrency)
    conns: list[Any] = []

    async def one(sid: str) -> None:
        async with sem:
            ws = await websockets.connect(f"{url}/{sid}", subprotocols=["ocpp2.0.1"],  # type: ignore[list-item]
                                          additional_headers=auth(sid), open_timeout=120, ping_interval=None,
                                          max_queue=4)
            await ws.send(json.dumps([2, "hb", "Heartbeat", {}]))
            answer = json.loads(await ws.recv())
            assert answer[0] == 3, answer
            conns.append(ws)

    await asyncio.gather(*(one(s) for s in ids))
    return conns


async def burst(url: str, ids: list[str]) -> dict[str, float]:
    import websockets
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from ocpp.routing import on
    from ocpp.v201 import ChargePoint, call, call_result

    class Station(ChargePoint):  # type: ignore[misc]
        done: asyncio.Future[float]

        @on("CertificateSigned")
        async def signed(self, certificate_chain: str, **_: Any) -> Any:
            if not self.done.done():
                self.done.set_result(time.perf_counter())
            return call_result.CertificateSigned(status="Accepted")

    csrs = []
    for sid in ids:  # client-side key generation is outside the timed window
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name.from_rfc4514_string(f"O=Bench CPO,CN=SN-{sid}")
        csrs.append(x509.CertificateSigningRequestBuilder().subject_name(name).sign(key, hashes.SHA256())
                    .public_bytes(serialization.Encoding.PEM).decode())
    loop = asyncio.get_running_loop()
    stations: list[Any] = []
    tasks = []
    for sid in ids:
        ws = await websockets.connect(f"{url}/{sid}", subprotocols=["ocpp2.0.1"],  # type: ignore[list-item]
                                      additional_headers=auth(sid), open_timeout=120, ping_interval=None)
        cp = Station(sid, ws, response_timeout=300)
        cp.done = loop.create_future()
        stations.append((cp, ws))
        tasks.append(asyncio.create_task(cp.start()))
    accepted: list[float] = []

    async def ask(cp: Any, csr: str) -> None:
        r = await cp.call(call.SignCertificate(csr=csr, certificate_type="ChargingStationCertificate"))
        assert r.status == "Accepted", r
        accepted.append(time.perf_counter())

    t0 = time.perf_counter()
    await asyncio.gather(*(ask(cp, csr) for (cp, _), csr in zip(stations, csrs, strict=True)))
    ends = await asyncio.gather(*(cp.done for cp, _ in stations))
    t_end = max(ends)
    for t in tasks:
        t.cancel()
    for _, ws in stations:
        await ws.close()
    n = len(ids)
    return {"requests": n, "accepted_per_s": n / (max(accepted) - t0), "signed_per_s": n / (t_end - t0),
            "wall_s": t_end - t0}


def raw_crypto_limit(seconds: float = 2.0) -> float:
    """CSR parse + PoP check + build/sign a P-256 leaf, cryptography only, one core."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name.from_rfc4514_string("CN=Bench CA")
    key = ec.generate_private_key(ec.SECP256R1())
    csr_pem = (x509.CertificateSigningRequestBuilder().subject_name(x509.Name.from_rfc4514_string("CN=SN-1,O=B"))
               .sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM))
    now = dt.datetime.now(dt.UTC)
    count = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        csr = x509.load_pem_x509_csr(csr_pem)
        assert csr.is_signature_valid
        (x509.CertificateBuilder().subject_name(csr.subject).issuer_name(ca_name).public_key(csr.public_key())
         .serial_number(x509.random_serial_number()).not_valid_before(now).not_valid_after(now + dt.timedelta(365))
         .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
         .sign(ca_key, hashes.SHA256()).public_bytes(serialization.Encoding.DER))
        count += 1
    return count / (time.perf_counter() - start)


def authority_issue_rate(data_dir: Path, count: int = 300, warm_up: int = 30) -> float:
    """The CA core's own path (CSR policy, write-ahead record, sign, finalise, audit) in-process on the same
    database, no OCPP: separates the endpoint's overhead from the issuance path's."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    from api.context import build_services
    from pki.profiles import CertKind

    svc = build_services(settings_for(data_dir), migrate=False)
    csrs = []
    for i in range(count + warm_up):
        key = ec.generate_private_key(ec.SECP256R1())
        csrs.append(x509.CertificateSigningRequestBuilder().subject_name(
            x509.Name.from_rfc4514_string(f"O=Bench CPO,CN=SN-REF{i}")).sign(key, hashes.SHA256())
            .public_bytes(serialization.Encoding.PEM))
    for csr in csrs[:warm_up]:  # statement caches and the CA key's first load are not the path's steady cost
        svc.authority.issue_from_csr(csr, CertKind.STATION_CLIENT)
    start = time.perf_counter()
    for csr in csrs[warm_up:]:
        svc.authority.issue_from_csr(csr, CertKind.STATION_CLIENT)
    rate = count / (time.perf_counter() - start)
    svc.close()
    return rate


def scrypt_ms(n: int) -> float:
    start = time.perf_counter()
    for _ in range(5):
        hashlib.scrypt(b"x" * 24, salt=b"s" * 16, n=n, r=8, p=1, maxmem=64 * 1024 * 1024)
    return (time.perf_counter() - start) / 5 * 1000


def start_server(role: list[str], port: int, args: argparse.Namespace) -> subprocess.Popen[bytes]:
    """This script again as a server process (``--serve DIR`` or ``--serve-bare``) with the run's WebSocket options."""
    return subprocess.Popen([sys.executable, __file__, *role, "--port", str(port), "--ws", args.ws,
                             "--compression", args.compression], env={**os.environ, "PYTHONPATH": str(ROOT)})


async def wait_listening(server: subprocess.Popen[bytes], port: int) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            if time.monotonic() > deadline or server.poll() is not None:
                raise RuntimeError("server did not start") from None
            await asyncio.sleep(0.2)


def stop(server: subprocess.Popen[bytes]) -> None:
    server.terminate()
    try:
        server.wait(timeout=30)
    except subprocess.TimeoutExpired:  # ~20,000 WebSockets closing gracefully take longer; figures are printed
        server.kill()
        server.wait()


async def hold(server: subprocess.Popen[bytes], url: str, ids: list[str], args: argparse.Namespace,
               ) -> tuple[list[Any], dict[str, float]]:
    """Warm the server up, take its RSS, open ``ids`` and hold them: (connections, figures)."""
    warm = await open_idle(url, ["B00000"], 1)  # imports, pools and caches warmed before the baseline
    for ws in warm:
        await ws.close()
    await asyncio.sleep(1.0)
    base = rss_kib(server.pid)
    t, cpu = time.perf_counter(), cpu_s(server.pid)
    conns = await asyncio.wait_for(open_idle(url, ids, args.concurrency), args.time_limit)
    connect_s, cpu = time.perf_counter() - t, cpu_s(server.pid) - cpu
    await asyncio.sleep(2.0)
    held = rss_kib(server.pid)
    return conns, {"rss_base_mib": round(base / 1024, 1), "rss_held_mib": round(held / 1024, 1),
                   "rss_per_connection_kib": round((held - base) / max(len(conns), 1), 1),
                   "handshakes_per_s": round(len(conns) / connect_s, 1),
                   "server_cpu_ms_per_handshake": round(cpu * 1000 / max(len(conns), 1), 2)}


async def bare_reference(n: int, args: argparse.Namespace) -> dict[str, float]:
    """The bare WebSocket server holding ``n`` connections from the same client (see the module docstring)."""
    port = free_port()
    server = start_server(["--serve-bare"], port, args)
    try:
        await wait_listening(server, port)
        conns, figures = await hold(server, f"ws://127.0.0.1:{port}/ocpp",
                                    [f"B{i:05d}" for i in range(n)], args)
        for ws in conns:
            await ws.close()
        return figures
    finally:
        stop(server)


async def run_bench(args: argparse.Namespace) -> dict[str, Any]:
    hard = raise_fd_limit()
    n = args.connections
    if n + args.burst + 200 > hard - 100:
        n = max(0, hard - args.burst - 300)
        print(f"fd limit {hard}: holding {n} connections", file=sys.stderr)
    data_dir = Path(tempfile.mkdtemp(prefix="pnc-bench-ocpp-"))
    t = time.perf_counter()
    prepare(data_dir, n + args.burst)
    setup_s = time.perf_counter() - t
    port = free_port()
    server = start_server(["--serve", str(data_dir)], port, args)
    url = f"ws://127.0.0.1:{port}/ocpp"
    try:
        await wait_listening(server, port)
        idle_ids = [f"B{i:05d}" for i in range(args.burst, args.burst + n)]
        conns, held = await hold(server, url, idle_ids, args)
        result: dict[str, Any] = {
            "ws_impl": args.ws, "compression": args.compression, "connections": len(conns), "fd_limit": hard, "setup_s": round(setup_s, 1),
            "server_rss_base_mib": held["rss_base_mib"], "server_rss_held_mib": held["rss_held_mib"],
            "rss_per_connection_kib": held["rss_per_connection_kib"], "handshakes_per_s": held["handshakes_per_s"],
            "server_cpu_ms_per_handshake": held["server_cpu_ms_per_handshake"],
            "scrypt_ms_registry_default": round(scrypt_ms(2**14), 1), "scrypt_ms_bench": round(scrypt_ms(2**10), 2),
        }
        print(json.dumps(result), file=sys.stderr)
        if args.burst:
            burst_ids = [f"B{i:05d}" for i in range(args.burst)]
            b = await asyncio.wait_for(burst(url, burst_ids), args.time_limit)
            result.update({f"burst_{k}": round(v, 1) for k, v in b.items()})
            result["server_rss_after_burst_mib"] = round(rss_kib(server.pid) / 1024, 1)
        result["raw_crypto_csr_to_cert_per_s_one_core"] = round(raw_crypto_limit(), 0)
        result["authority_issue_from_csr_per_s"] = round(authority_issue_rate(data_dir), 1)
        if args.burst:
            result["burst_signed_vs_raw_crypto"] = round(result["burst_signed_per_s"]
                                                          / result["raw_crypto_csr_to_cert_per_s_one_core"], 3)
            result["burst_signed_vs_authority"] = round(result["burst_signed_per_s"]
                                                         / result["authority_issue_from_csr_per_s"], 3)
        for ws in conns:
            await ws.close()
    finally:
        stop(server)
    if args.reference and n:
        bare = await bare_reference(len(conns), args)
        result.update({f"bare_websocket_{k}": v for k, v in bare.items()})
        result["rss_vs_bare_websocket"] = round(result["rss_per_connection_kib"]
                                                / max(bare["rss_per_connection_kib"], 0.1), 2)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--connections", type=int, default=10_000)
    parser.add_argument("--burst", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=200, help="handshakes in flight")
    parser.add_argument("--ws", default="websockets-sansio", choices=["websockets-sansio", "wsproto", "websockets"])
    parser.add_argument("--compression", default="stateless", choices=["stateless", "context", "off"],
                        help="permessage-deflate mode with websockets-sansio (PNC_OCPP_WS_COMPRESSION)")
    parser.add_argument("--time-limit", type=float, default=600)
    parser.add_argument("--no-reference", dest="reference", action="store_false",
                        help="skip the bare WebSocket server reference for the connection figures")
    parser.add_argument("--serve", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--serve-bare", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_bare:
        raise_fd_limit()
        serve_bare(args.port, args.ws, args.compression)
        return
    if args.serve:
        raise_fd_limit()
        serve(args.serve, args.port, args.ws, args.compression)
        return
    print(json.dumps(asyncio.run(run_bench(args)), indent=2))


if __name__ == "__main__":
    main()
