"""The uplink over TLS against a real mosquitto: the broker's certificate is verified against
`uplink.tls.ca`, a broker signed by another CA is refused with a clear reason, and a broker
that asks for a client certificate gets the one in `uplink.tls.cert`/`key`."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import ipaddress
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from structlog.testing import capture_logs

from edge.config.building import load
from edge.events import Event, Priority
from edge.journal import EventQuery, Journal, read_events
from edge.uplink.worker import Uplink
from edge.hil.broker import Broker, ListenerTls
from edge.hil.cloud import Cloud

from uplink_rig import open_cloud, open_store, until, uplink_config

B = "test-house"


@dataclasses.dataclass(frozen=True)
class Pki:
    """One throwaway CA and the PEM files it signed: the broker's and a gateway's."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def _write_key(path: Path) -> ec.EllipticCurvePrivateKey:
    key = ec.generate_private_key(ec.SECP256R1())
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    path.chmod(0o600)
    return key


def _certificate(subject: str, key, issuer: x509.Name, signer, *, ca: bool, san: list[x509.GeneralName] = ()) -> x509.Certificate:
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
                          key_encipherment=False, data_encipherment=False, key_agreement=False,
                          encipher_only=False, decipher_only=False), critical=True,
        ).add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    if san:
        builder = builder.add_extension(x509.SubjectAlternativeName(list(san)), critical=False)
    return builder.sign(signer, hashes.SHA256())


def make_pki(directory: Path, name: str) -> Pki:
    """A CA named `name`, a server certificate for 127.0.0.1/localhost and a client certificate."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_key = _write_key(directory / f"{name}-ca.key")
    ca_cert = _certificate(f"{name} test CA", ca_key, x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{name} test CA")]), ca_key, ca=True)
    pem = lambda cert: cert.public_bytes(serialization.Encoding.PEM)  # noqa: E731
    (directory / f"{name}-ca.pem").write_bytes(pem(ca_cert))
    server_key = _write_key(directory / f"{name}-server.key")
    server_san = [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
    server = _certificate("broker", server_key, ca_cert.subject, ca_key, ca=False, san=server_san)
    (directory / f"{name}-server.pem").write_bytes(pem(server))
    client_key = _write_key(directory / f"{name}-client.key")
    client = _certificate(f"edge-{B}", client_key, ca_cert.subject, ca_key, ca=False)
    (directory / f"{name}-client.pem").write_bytes(pem(client))
    return Pki(
        ca=directory / f"{name}-ca.pem", server_cert=directory / f"{name}-server.pem", server_key=directory / f"{name}-server.key",
        client_cert=directory / f"{name}-client.pem", client_key=directory / f"{name}-client.key",
    )


def tls_block(ca: Path, cert: Path | None = None, key: Path | None = None) -> dict:
    """The uplink's `tls` field: the CA, and the client's certificate and key if given."""
    return {"ca": str(ca)} | ({} if cert is None else {"cert": str(cert), "key": str(key)})


def tls_cloud(building_dir: Path, port: int, pki: Pki) -> Cloud:
    """The reference consumer, connecting with TLS (and the CA's client certificate) as well."""
    cloud = open_cloud(building_dir, port)
    cloud.settings = dataclasses.replace(cloud.settings, ca=pki.ca, cert=pki.client_cert, key=pki.client_key)
    return cloud


async def start_gateway(config_path: Path):
    """The uplink in-process, as `edge run` wires it, on its own journal."""
    config = load(config_path)
    journal = await Journal.open(config.journal_path)
    store = open_store(config_path)
    uplink = Uplink(config, "cafe", journal, lambda: store)
    return journal, store, uplink, asyncio.create_task(uplink.run())


async def stop_gateway(journal: Journal, store, uplink: Uplink, task: asyncio.Task) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    uplink.close()
    store.close()
    await journal.close()


def alarm(n: int) -> Event:
    return Event(kind="alarm.test", priority=Priority.ALARM, source="f3", body={"n": n})


async def events_reach_the_cloud(config_path: Path, cloud: Cloud) -> None:
    journal, store, uplink, task = await start_gateway(config_path)
    try:
        seqs = [await journal.append(alarm(n)) for n in range(5)]
        await until(lambda: set(seqs) <= set(cloud.seqs(B)))
        await until(lambda: cloud.book(B).status.get("state") == "online")
    finally:
        await stop_gateway(journal, store, uplink, task)


def test_the_gateway_verifies_the_broker_with_its_ca_and_its_events_reach_the_cloud(write_config, building_dir, tmp_path):
    pki = make_pki(tmp_path / "pki", "building")

    async def scenario():
        with Broker(tls=ListenerTls(pki.ca, pki.server_cert, pki.server_key)) as broker:
            config_path = uplink_config(write_config, building_dir, broker.port, tls=tls_block(pki.ca))
            cloud = tls_cloud(building_dir, broker.port, pki)
            await cloud.start()
            await events_reach_the_cloud(config_path, cloud)
            await cloud.stop()

    asyncio.run(scenario())


def test_a_broker_signed_by_another_ca_is_refused_with_the_reason_logged(write_config, building_dir, tmp_path):
    pki = make_pki(tmp_path / "pki", "building")
    impostor = make_pki(tmp_path / "impostor", "impostor")

    async def scenario():
        with Broker(tls=ListenerTls(impostor.ca, impostor.server_cert, impostor.server_key)) as broker:
            config_path = uplink_config(write_config, building_dir, broker.port, tls=tls_block(pki.ca))
            cloud = tls_cloud(building_dir, broker.port, impostor)  # the impostor's own consumer trusts it
            await cloud.start()
            with capture_logs() as logs:
                journal, store, uplink, task = await start_gateway(config_path)
                try:
                    await journal.append(alarm(0))
                    failed = lambda: [e for e in logs if e["event"] == "uplink connect failed"]  # noqa: E731
                    await until(lambda: len(failed()) >= 2)  # refused, and refused again on retry
                    assert not uplink.connected.is_set()
                    assert uplink.pusher.synced_seq == 0
                    assert "certificate verify failed" in failed()[0]["error"].lower()
                finally:
                    await stop_gateway(journal, store, uplink, task)
            await asyncio.sleep(0.2)  # anything that did slip through has had time to arrive
            assert cloud.seqs(B) == [] and cloud.book(B).status == {}
            down = read_events(load(config_path).journal_path, EventQuery(kinds=("fault.uplink_down",), limit=None))
            assert len(down) == 1, "journaled once per change of the link, not at every retry"
            assert "certificate verify failed" in down[0].body["detail"].lower()
            await cloud.stop()

    asyncio.run(scenario())


def test_a_broker_that_requires_client_certificates_accepts_the_gateways(write_config, building_dir, tmp_path):
    pki = make_pki(tmp_path / "pki", "building")

    async def scenario():
        with Broker(tls=ListenerTls(pki.ca, pki.server_cert, pki.server_key, require_certificate=True)) as broker:
            config_path = uplink_config(write_config, building_dir, broker.port, tls=tls_block(pki.ca, pki.client_cert, pki.client_key))
            cloud = tls_cloud(building_dir, broker.port, pki)
            await cloud.start()
            await events_reach_the_cloud(config_path, cloud)
            await cloud.stop()

    asyncio.run(scenario())
