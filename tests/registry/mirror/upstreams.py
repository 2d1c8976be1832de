"""Upstream registries on loopback for the mirror's tests.

- TokenServer: a token service (distribution's token scheme) issuing ES256 JWTs signed with a key made
  for the test, with an x5c header docker-registry checks against `rootcertbundle`; it records every
  request (counting realm hits) and grants by a small policy: anonymous → pull on anything outside
  `private/`, MIRROR_USER → pull everywhere, PUSH_USER → everything.
- start_token_registry: Debian's docker-registry 2.8 with `auth: token` pointing at a TokenServer.
- write_layout / push: an OCI layout written by Python, copied in with skopeo.
- Scripted: a tiny HTTP server whose answers each test scripts (429, 5xx, tampered bytes, redirects).
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import ipaddress
import json
import os
import ssl
import subprocess
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import jwt
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.live import GiveUp, free_port, wait_until

REGISTRY_BINARY = "/usr/bin/docker-registry"
SERVICE = "wharf-upstream"
ISSUER = "wharf-test-issuer"
MIRROR_USER, MIRROR_PASSWORD = "mirrorbot", "hunter2-upstream-secret"
PUSH_USER, PUSH_PASSWORD = "pusher", "push-password-1"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]

    @property
    def query(self) -> dict[str, list[str]]:
        return parse_qs(urlsplit(self.path).query)


class _Server:
    """A ThreadingHTTPServer on 127.0.0.1 whose handler calls `self.handle(handler)`; records requests."""

    def __init__(self, *, tls: ssl.SSLContext | None = None) -> None:
        self.tls = tls
        self.requests: list[Seen] = []
        self._lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _any(self):
                with owner._lock:
                    owner.requests.append(Seen(self.command, self.path, dict(self.headers.items())))
                owner.handle(self)

            do_GET = do_HEAD = _any

            def log_message(self, *args):
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def get_request(self):
                sock, address = super().get_request()
                if owner.tls is not None:
                    sock.settimeout(5)
                    try:  # the handshake in this thread: a client that fails it must not stop the server
                        sock = owner.tls.wrap_socket(sock, server_side=True)
                    except (ssl.SSLError, OSError):
                        sock.close()
                        raise
                return sock, address

            def handle_error(self, request, client_address):
                pass  # clients that hang up or fail the handshake: some tests make them

        self.server = Server(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    @property
    def port(self) -> int:
        return self.server.server_address[1]

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    def handle(self, handler: BaseHTTPRequestHandler) -> None:
        raise NotImplementedError

    def clear(self) -> None:
        with self._lock:
            self.requests.clear()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def reply(handler: BaseHTTPRequestHandler, status: int, body: bytes = b"", headers: dict[str, str] | None = None,
          *, length: int | None = None) -> None:
    """Answer with `body`; `length` sends another Content-Length (and closes after the body)."""
    handler.send_response(status)
    for name, value in (headers or {}).items():
        handler.send_header(name, value)
    handler.send_header("Content-Length", str(len(body) if length is None else length))
    if length is not None:
        handler.send_header("Connection", "close")
        handler.close_connection = True
    handler.end_headers()
    if handler.command != "HEAD":
        handler.wfile.write(body)
        handler.wfile.flush()


class TokenServer(_Server):
    def __init__(self, *, expires_in: int = 300) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "wharf test token issuer")])
        now = datetime.datetime.now(datetime.UTC)
        self.certificate = (
            x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(self.key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self.key, hashes.SHA256())
        )
        self.expires_in = expires_in
        self.users = {MIRROR_USER: MIRROR_PASSWORD, PUSH_USER: PUSH_PASSWORD}
        super().__init__()

    @property
    def realm(self) -> str:
        return f"{self.url}/token"

    def certificate_pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    def token_requests(self) -> list[Seen]:
        return [seen for seen in self.requests if seen.path.startswith("/token")]

    def grant(self, account: str, kind: str, name: str, actions: list[str]) -> list[str]:
        if kind != "repository":
            return []
        if account == PUSH_USER:
            return actions
        if account == MIRROR_USER or not name.startswith("private/"):
            return [a for a in actions if a == "pull"]
        return []

    def handle(self, handler: BaseHTTPRequestHandler) -> None:
        if not handler.path.startswith("/token"):
            return reply(handler, 404)
        account = ""
        header = handler.headers.get("Authorization", "")
        if header.startswith("Basic "):
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
            if self.users.get(user) != password:
                return reply(handler, 401, b'{"details":"bad credentials"}', {"Content-Type": "application/json"})
            account = user
        query = parse_qs(urlsplit(handler.path).query)
        access = []
        for scope in query.get("scope", []):
            kind, _, rest = scope.partition(":")
            name, _, actions = rest.rpartition(":")
            granted = self.grant(account, kind, name, actions.split(","))
            if granted:
                access.append({"type": kind, "name": name, "actions": granted})
        now = int(time.time())
        claims = {"iss": ISSUER, "sub": account, "aud": query.get("service", [""])[0], "exp": now + self.expires_in,
                  "nbf": now - 10, "iat": now, "jti": uuid.uuid4().hex, "access": access}
        der = self.certificate.public_bytes(serialization.Encoding.DER)
        token = jwt.encode(claims, self.key, algorithm="ES256",
                           headers={"x5c": [base64.b64encode(der).decode()]})
        body = json.dumps({"token": token, "access_token": token, "expires_in": self.expires_in,
                           "issued_at": datetime.datetime.now(datetime.UTC).isoformat()}).encode()
        return reply(handler, 200, body, {"Content-Type": "application/json"})


@dataclass
class TokenRegistry:
    port: int
    root: Path
    process: subprocess.Popen
    tokens: TokenServer
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-6000:]
        except FileNotFoundError:
            return ""

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_token_registry(root: Path, tokens: TokenServer) -> TokenRegistry:
    """docker-registry on a free loopback port, filesystem storage under `root`, token auth at `tokens`."""
    if not Path(REGISTRY_BINARY).exists():
        raise RuntimeError(f"{REGISTRY_BINARY} is missing: apt-get install docker-registry")
    root.mkdir(parents=True, exist_ok=True)
    bundle = root / "token.crt"
    bundle.write_bytes(tokens.certificate_pem())
    port = free_port()
    config = root / "config.yml"
    config.write_text(f"""version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: {root / "storage"}
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: 127.0.0.1:{port}
  secret: wharf-mirror-test-not-a-secret
auth:
  token:
    realm: {tokens.realm}
    service: {SERVICE}
    issuer: {ISSUER}
    rootcertbundle: {bundle}
""")
    log_path = root / "registry.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")}
    with open(log_path, "ab") as log:
        process = subprocess.Popen([REGISTRY_BINARY, "serve", str(config)], env=env, stdout=log,
                                   stderr=subprocess.STDOUT, cwd=root)
    registry = TokenRegistry(port=port, root=root, process=process, tokens=tokens, log_path=log_path)

    def answers() -> bool:
        if process.poll() is not None:
            raise GiveUp(f"docker-registry exited:\n{registry.log()}")
        return requests.get(f"{registry.url}/v2/", timeout=2).status_code == 401

    try:
        wait_until(answers, timeout=30, message="docker-registry to answer /v2/")
    except Exception:
        registry.stop()
        raise
    return registry


# --- images ------------------------------------------------------------------------------------------


@dataclass
class Image:
    manifest: bytes
    digest: str
    blobs: dict[str, bytes] = field(default_factory=dict)  # config and layers, by digest

    @property
    def layers(self) -> list[str]:
        return [layer["digest"] for layer in json.loads(self.manifest)["layers"]]


def _blob(layout: Path, data: bytes) -> str:
    digest = hashlib.sha256(data).hexdigest()
    (layout / "blobs" / "sha256" / digest).write_bytes(data)
    return f"sha256:{digest}"


def write_layout(layout: Path, tag: str, *, layer_sizes: tuple[int, ...] = (3 * 1024 * 1024 + 17, 1000),
                 arch: str = "amd64") -> Image:
    """An image of random (incompressible) layers, tagged `tag` in the OCI layout at `layout`."""
    (layout / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
    if not (layout / "index.json").exists():
        (layout / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
        (layout / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": []}))
    blobs = {}
    layers = []
    for size in layer_sizes:
        data = os.urandom(size)
        digest = _blob(layout, data)
        blobs[digest] = data
        layers.append({"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": digest, "size": size})
    config = json.dumps({"architecture": arch, "os": "linux", "config": {},
                         "rootfs": {"type": "layers", "diff_ids": [layer["digest"] for layer in layers]}}).encode()
    config_digest = _blob(layout, config)
    blobs[config_digest] = config
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest,
                   "size": len(config)},
        "layers": layers,
    }, indent=1).encode()
    manifest_digest = _blob(layout, manifest)
    index = json.loads((layout / "index.json").read_text())
    index["manifests"].append({"mediaType": OCI_MANIFEST, "digest": manifest_digest, "size": len(manifest),
                               "annotations": {"org.opencontainers.image.ref.name": tag}})
    (layout / "index.json").write_text(json.dumps(index))
    return Image(manifest=manifest, digest=manifest_digest, blobs=blobs)


def write_index(layout: Path, tag: str, *, arches: tuple[str, ...] = ("amd64", "arm64")) -> tuple[Image, list[Image]]:
    """A multi-arch OCI index tagged `tag`, one small image per arch (children untagged in the layout)."""
    children = []
    for arch in arches:
        children.append(write_layout(layout, f"{tag}-{arch}", layer_sizes=(500,), arch=arch))
    index = json.loads((layout / "index.json").read_text())
    index["manifests"] = [d for d in index["manifests"]
                          if not d["annotations"]["org.opencontainers.image.ref.name"].startswith(f"{tag}-")]
    body = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
        {"mediaType": OCI_MANIFEST, "digest": child.digest, "size": len(child.manifest),
         "platform": {"architecture": arch, "os": "linux"}} for arch, child in zip(arches, children, strict=True)
    ]}).encode()
    digest = _blob(layout, body)
    index["manifests"].append({"mediaType": OCI_INDEX, "digest": digest, "size": len(body),
                               "annotations": {"org.opencontainers.image.ref.name": tag}})
    (layout / "index.json").write_text(json.dumps(index))
    return Image(manifest=body, digest=digest), children


def push(layout: Path, tag: str, registry: TokenRegistry, repository: str) -> None:
    """skopeo copy from the layout into the registry (PUSH_USER's credentials, through the token server)."""
    argv = ["skopeo", "copy", "--quiet", "--all", "--dest-tls-verify=false", "--preserve-digests",
            "--dest-creds", f"{PUSH_USER}:{PUSH_PASSWORD}",
            f"oci:{layout}:{tag}", f"docker://{registry.host}/{repository}:{tag}"]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    if proc.returncode:
        raise RuntimeError(f"skopeo copy exited {proc.returncode}:\n{proc.stderr}\n{registry.log()}")


# --- a scripted server -------------------------------------------------------------------------------


class Scripted(_Server):
    """Answers with `script(handler)`, which each test sets (reply() helps); over TLS with `tls`."""

    def __init__(self, *, tls: ssl.SSLContext | None = None) -> None:
        self.script: Callable[[BaseHTTPRequestHandler], None] = lambda handler: reply(handler, 404)
        super().__init__(tls=tls)

    def handle(self, handler: BaseHTTPRequestHandler) -> None:
        self.script(handler)


class TestCA:
    """A certificate authority for one test: `server_context(names)` is a TLS server context whose
    certificate (signed by the CA) holds those DNS names and IP addresses; `pem` is the CA to trust."""

    __test__ = False

    def __init__(self, root: Path) -> None:
        self.root = root
        self.key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "wharf mirror test CA")])
        now = datetime.datetime.now(datetime.UTC)
        self.certificate = (
            x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(self.key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(self.key.public_key()), critical=False)
            .sign(self.key, hashes.SHA256())
        )
        self.pem = root / "ca.pem"
        self.pem.write_bytes(self.certificate.public_bytes(serialization.Encoding.PEM))

    def server_context(self, *names: str) -> ssl.SSLContext:
        key = ec.generate_private_key(ec.SECP256R1())
        alt = []
        for value in names:
            try:
                alt.append(x509.IPAddress(ipaddress.ip_address(value)))
            except ValueError:
                alt.append(x509.DNSName(value))
        now = datetime.datetime.now(datetime.UTC)
        certificate = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
            .issuer_name(self.certificate.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(alt), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()), critical=False)
            .sign(self.key, hashes.SHA256())
        )
        stem = self.root / f"server-{uuid.uuid4().hex[:8]}"
        stem.with_suffix(".crt").write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
        stem.with_suffix(".key").write_bytes(key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(stem.with_suffix(".crt"), stem.with_suffix(".key"))
        return context
