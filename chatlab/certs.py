"""A class CA and a server certificate, so a class can use TLS without buying anything.

A browser trusts a certificate because a CA it already trusts signed it.  A class
server on a teacher's laptop has no such CA, so the teacher makes one: the CA's
certificate (``ca.pem``) goes to every student, who pass it as ``cafile``; its key
(``ca-key.pem``) stays with the teacher; the server gets a certificate for the
names students type to reach it (``server.pem``, ``server-key.pem``)::

    python -m chatlab certs --out class-tls --host localhost --host 192.0.2.10 --host teacher.local
    python -m chatlab server --tls-cert class-tls/server.pem --tls-key class-tls/server-key.pem
    python -m chatlab client --tls --cafile class-tls/ca.pem teacher.local:7777

The X.509 work is done by the ``cryptography`` package (``pip install
"chatlab[tls]"``), never by hand-made ASN.1.
"""

from __future__ import annotations

import argparse
import datetime
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from .i18n import _

__all__ = ["ClassCA", "make_class_ca", "issue_server_cert", "write_class_files", "main"]

DEFAULT_HOSTS = ("localhost", "127.0.0.1", "::1")
DEFAULT_DAYS = 365


def _crypto() -> Any:
    try:
        from cryptography import x509  # noqa: F401
    except ImportError:
        raise SystemExit(_("chatlab certs needs the cryptography package: pip install \"chatlab[tls]\"")) from None
    import cryptography
    return cryptography


@dataclass
class ClassCA:
    """A certificate authority for one class: its certificate and its private key (PEM)."""

    cert_pem: bytes
    key_pem: bytes


def _name(common_name: str) -> Any:
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "chatlab class"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _key() -> Any:
    from cryptography.hazmat.primitives.asymmetric import ec

    return ec.generate_private_key(ec.SECP256R1())


def _pem_key(key: Any) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def make_class_ca(name: str = "chatlab class CA", days: int = DEFAULT_DAYS) -> ClassCA:
    """A new CA, valid for ``days`` days from now."""
    _crypto()
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization

    key = _key()
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(name)).issuer_name(_name(name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                     content_commitment=False,
                                     key_encipherment=False, data_encipherment=False, key_agreement=False,
                                     encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return ClassCA(cert.public_bytes(serialization.Encoding.PEM), _pem_key(key))


def _subject_alt_names(hosts: Sequence[str]) -> list[Any]:
    from cryptography import x509

    names: list[Any] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return names


def issue_server_cert(ca: ClassCA, hosts: Sequence[str] = DEFAULT_HOSTS, days: int = DEFAULT_DAYS,
                      not_before: datetime.datetime | None = None,
                      common_name: str | None = None) -> tuple[bytes, bytes]:
    """A server certificate signed by ``ca`` for ``hosts`` (names and IP addresses): ``(cert_pem, key_pem)``.

    ``not_before`` and a negative ``days`` make an already expired certificate,
    which is what notebook 11 uses to show the error a client must get.  The subject's
    common name is ``hosts[0]`` unless ``common_name`` says otherwise; clients go by the
    subject alternative names (``hosts``), never by the common name (RFC 6125).
    """
    if not hosts:
        raise ValueError("a server certificate needs at least one host name or address")
    _crypto()
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.x509.oid import ExtendedKeyUsageOID

    ca_cert = x509.load_pem_x509_certificate(ca.cert_pem)
    ca_key = serialization.load_pem_private_key(ca.key_pem, password=None)
    key = _key()
    start = not_before or datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=5)
    end = start + datetime.timedelta(days=days) if days > 0 else start + datetime.timedelta(minutes=1)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name or hosts[0])).issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start).not_valid_after(end)
        .add_extension(x509.SubjectAlternativeName(_subject_alt_names(hosts)), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)  # type: ignore[arg-type]
        .sign(ca_key, hashes.SHA256())  # type: ignore[arg-type]
    )
    return cert.public_bytes(serialization.Encoding.PEM), _pem_key(key)


def check_hosts(hosts: Sequence[str]) -> list[str]:
    """The names and addresses as a certificate can hold them; ValueError names the first that cannot be.

    A name of another script (``café.example``) is written as IDNA (``xn--caf-dma.example``).
    """
    checked = []
    for host in hosts:
        host = host.strip()
        try:
            checked.append(str(ipaddress.ip_address(host)))
            continue
        except ValueError:
            pass
        labels = host.rstrip(".").split(".")
        if not host or any(not label for label in labels) or all(label.isdigit() for label in labels):
            raise ValueError(f"{host!r} is neither a host name nor an IP address")
        try:
            ascii_name = host.encode("idna").decode("ascii")
        except UnicodeError:
            raise ValueError(f"{host!r} is not a valid host name") from None
        if not all(c.isalnum() or c in "-." for c in ascii_name):
            raise ValueError(f"{host!r} is not a valid host name (letters, digits, '-' and '.' only)")
        checked.append(ascii_name)
    if not checked:
        raise ValueError("a server certificate needs at least one host name or address")
    return checked


def write_class_files(out: str | os.PathLike[str], hosts: Sequence[str] = DEFAULT_HOSTS,
                      days: int = DEFAULT_DAYS, new_ca: bool = False) -> dict[str, Path]:
    """Make a server certificate into ``out`` (and the CA, unless ``out`` has one); return the four paths by role.

    An existing ``ca.pem`` and ``ca-key.pem`` in ``out`` are kept and sign the new server
    certificate, so running it again (to add a host name) does not invalidate the CA the
    students already have; ``new_ca=True`` makes a new one anyway.  The keys are written
    readable by their owner only (on POSIX systems).

    Raises:
        ValueError: ``days`` below 1, or a host that no certificate can hold.
        OSError: ``out`` cannot be written.
    """
    if days < 1:
        raise ValueError(f"--days must be at least 1, not {days}")
    hosts = check_hosts(hosts)
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {"ca": folder / "ca.pem", "ca_key": folder / "ca-key.pem",
             "cert": folder / "server.pem", "key": folder / "server-key.pem"}
    if not new_ca and paths["ca"].exists() and paths["ca_key"].exists():
        ca = ClassCA(paths["ca"].read_bytes(), paths["ca_key"].read_bytes())
        written: tuple[str, ...] = ("cert", "key")
    else:
        ca = make_class_ca(days=max(days, DEFAULT_DAYS))
        written = ("ca", "ca_key", "cert", "key")
    cert, key = issue_server_cert(ca, hosts, days)
    data = {"ca": ca.cert_pem, "ca_key": ca.key_pem, "cert": cert, "key": key}
    for role in written:
        paths[role].write_bytes(data[role])
        if role.endswith("key"):
            os.chmod(paths[role], 0o600)
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m chatlab certs",
        description=_("Make a class CA and a server certificate for TLS (notebook 11)."))
    parser.add_argument("--out", default="chatlab-tls", help=_("folder for the four files (default: %(default)s)"))
    parser.add_argument("--host", action="append", dest="hosts", metavar="NAME",
                        help=_("a name or address students connect to; repeat it (default: localhost, 127.0.0.1, ::1)"))
    parser.add_argument("--days", type=int, default=DEFAULT_DAYS,
                        help=_("days the certificates are valid (default: %(default)s)"))
    parser.add_argument("--new-ca", action="store_true",
                        help=_("make a new class CA even if --out has one (students then need the new ca.pem)"))
    args = parser.parse_args(argv)
    hosts = args.hosts or list(DEFAULT_HOSTS)
    had_ca = (Path(args.out) / "ca.pem").exists() and (Path(args.out) / "ca-key.pem").exists()
    try:
        paths = write_class_files(args.out, hosts, args.days, new_ca=args.new_ca)
    except ValueError as exc:
        parser.error(str(exc))
    except OSError as exc:
        parser.error(_("cannot write into {folder}: {error}").format(folder=args.out, error=exc.strerror or exc))
    if had_ca and not args.new_ca:
        print(_("class CA:           {path}   (kept: the students' copy stays valid)").format(path=paths["ca"]))
    else:
        print(_("class CA:           {path}   (give it to every student: --cafile)").format(path=paths["ca"]))
        print(_("CA key:             {path}   (keep it: it signs certificates)").format(path=paths["ca_key"]))
    print(_("server certificate: {path}   (--tls-cert) for {hosts}").format(path=paths["cert"], hosts=", ".join(hosts)))
    print(_("server key:         {path}   (--tls-key)").format(path=paths["key"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
