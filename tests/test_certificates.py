"""The deployment's certificates over time: none outlives its CA, a master's is renewed before it expires, and
a client told of an expired CA says so (it said "not signed by the CA file given": the wrong file to look for)."""

import datetime
import json
import os

import pytest_twisted
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from papertrader import tls
from papertrader.master import files
from papertrader.tls import CertificateAuthority

NOW = datetime.datetime.now(datetime.timezone.utc)


def test_a_certificate_issued_later_never_outlives_its_ca(tmp_path):
    ca = CertificateAuthority.ensure(str(tmp_path))
    path = str(tmp_path / "worker.pem")
    ca.issue("PaperTrader worker w9", ["localhost"], path)  # a worker registered after the CA was made
    assert tls.read_certificate(path).not_valid_after_utc == tls.expires(ca.pem())  # (a moment later than the CA's, before)


def _short_lived(ca, path, days, key_identifiers=True):
    """A certificate for the master, signed by ``ca``, that expires in ``days`` (as one issued years ago); without
    ``key_identifiers``, as one made before certificates carried them."""
    key = ec.generate_private_key(ec.SECP256R1())
    builder = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "m")]))
               .issuer_name(ca.cert.subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(NOW - datetime.timedelta(days=3000))
               .not_valid_after(NOW + datetime.timedelta(days=days))
               .add_extension(tls._san(tls.default_hostnames()), critical=False))
    if key_identifiers:
        builder = (builder.add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
                   .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()),
                                  critical=False))
    cert = builder.sign(ca.key, hashes.SHA256())
    tls.write_private(path, key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                              serialization.NoEncryption())
                      + cert.public_bytes(serialization.Encoding.PEM))


def test_a_masters_certificate_about_to_expire_is_issued_again_at_its_start(tmp_path):
    data_dir = str(tmp_path / "data")
    ca = files.ensure_master_files(data_dir)
    path = os.path.join(data_dir, files.MASTER_CERT)
    _short_lived(ca, path, days=10)
    files.ensure_master_files(data_dir)
    assert tls.read_certificate(path).not_valid_after_utc == tls.expires(ca.pem())  # renewed (to its CA's end)
    _short_lived(ca, path, days=60)  # not yet due: kept
    files.ensure_master_files(data_dir)
    assert tls.read_certificate(path).not_valid_after_utc < NOW + datetime.timedelta(days=61)


@pytest_twisted.ensureDeferred
async def test_a_client_given_an_expired_ca_says_it_expired(deployment, tmp_path):
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "PaperTrader CA")])
    old = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
           .serial_number(x509.random_serial_number())
           .not_valid_before(NOW - datetime.timedelta(days=3660)).not_valid_after(NOW - datetime.timedelta(days=10))
           .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
           .sign(key, hashes.SHA256()))
    path = tmp_path / "expired-ca.pem"
    path.write_bytes(old.public_bytes(serialization.Encoding.PEM))
    status, out, err = await deployment.cli("--ca-file", str(path), "workers")
    answer = json.loads(out)
    assert (status, answer["error"]) == (1, "bad_certificate")
    day = (NOW - datetime.timedelta(days=10)).date().isoformat()
    assert f"CA certificate (the CA file given: --ca-file or PAPERTRADER_CA) expired on {day}" in answer["message"]


def test_a_deployment_moved_to_a_new_ca_gets_certificates_of_it(tmp_path):
    """The README's move to a new CA: its files moved aside, the master's start makes a new CA and a master
    certificate of it; registering a worker again gives its bundle the new CA file and a certificate of it
    (its key, and so its registration, kept)."""
    data_dir = str(tmp_path / "data")
    old = files.ensure_master_files(data_dir)
    bundle = str(tmp_path / "w1")
    armor = files.make_worker_bundle(data_dir, "w1", ["w1.example.com"], bundle)
    for name in (tls.CA_CERT, tls.CA_KEY):
        os.rename(os.path.join(data_dir, name), os.path.join(data_dir, name + ".old"))
    new = files.ensure_master_files(data_dir)
    master = tls.read_certificate(os.path.join(data_dir, files.MASTER_CERT))
    assert new.pem() != old.pem() and tls.issued_by(master, new)
    assert files.make_worker_bundle(data_dir, "w1", ["w1.example.com"], bundle) == armor  # the same key
    assert open(os.path.join(bundle, tls.CA_CERT), "rb").read() == new.pem()
    worker = os.path.join(bundle, files.WORKER_CERT)
    cert = tls.read_certificate(worker)
    assert tls.issued_by(cert, new) and not tls.issued_by(cert, old)
    assert "w1.example.com" in tls.certificate_hostnames(worker)


def _strict_handshake(ca_file, server_pem, hostname="localhost"):
    """A TLS handshake, in memory, of a client of Python's ssl module that trusts ``ca_file`` only and verifies
    strictly (VERIFY_X509_STRICT: Python 3.13's default, and urllib3's there: requests, alpaca-py) with a server
    holding ``server_pem``.  Raises ssl.SSLCertVerificationError if the client refuses the server's chain."""
    import ssl

    client_context = ssl.create_default_context(cafile=ca_file)
    client_context.verify_flags |= ssl.VERIFY_X509_STRICT
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(server_pem)
    pipes = [(ssl.MemoryBIO(), ssl.MemoryBIO()) for _ in range(2)]  # (incoming, outgoing) of each side
    client = client_context.wrap_bio(*pipes[0], server_hostname=hostname)
    server = server_context.wrap_bio(*pipes[1], server_side=True)
    done = set()
    for _ in range(10):
        for side, end in ((client, "client"), (server, "server")):
            try:
                side.do_handshake()
                done.add(end)
            except ssl.SSLWantReadError:
                pass
        pipes[1][0].write(pipes[0][1].read())  # client -> server
        pipes[0][0].write(pipes[1][1].read())  # server -> client
        if done == {"client", "server"}:
            return
    raise AssertionError("the handshake did not finish")


def test_a_strict_python_client_accepts_the_deployments_certificates(tmp_path):
    """Python 3.13's ssl.create_default_context verifies strictly: a client of the HTTP API there (alpaca-py's
    REST and streams, requests) refused the master's and workers' certificates, "Missing Authority Key
    Identifier"."""
    data_dir = str(tmp_path / "data")
    files.ensure_master_files(data_dir)
    files.make_worker_bundle(data_dir, "w1", [], str(tmp_path / "w1"))
    ca_file = os.path.join(data_dir, tls.CA_CERT)
    _strict_handshake(ca_file, os.path.join(data_dir, files.MASTER_CERT))
    _strict_handshake(ca_file, str(tmp_path / "w1" / files.WORKER_CERT))


def test_a_deployment_made_before_key_identifiers_gets_them_at_its_next_start(tmp_path):
    """A CA and a master certificate made without key identifiers (before they were written): the master's next
    start makes the CA's certificate again with them, of the same key and name (what it signed stays signed by
    it), and issues the master's again; a strict client given the new ca.pem accepts the master."""
    data_dir = str(tmp_path / "data")
    os.makedirs(data_dir)
    key = ec.generate_private_key(ec.SECP256R1())
    name = tls._name("PaperTrader CA")
    old = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
           .serial_number(x509.random_serial_number())
           .not_valid_before(NOW - datetime.timedelta(days=100)).not_valid_after(NOW + datetime.timedelta(days=3000))
           .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
           .sign(key, hashes.SHA256()))
    tls.write_private(os.path.join(data_dir, tls.CA_KEY), key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    with open(os.path.join(data_dir, tls.CA_CERT), "wb") as f:
        f.write(old.public_bytes(serialization.Encoding.PEM))
    old_ca = CertificateAuthority(key, old)
    master_path = os.path.join(data_dir, files.MASTER_CERT)
    _short_lived(old_ca, master_path, days=3000, key_identifiers=False)
    ca = files.ensure_master_files(data_dir)
    assert tls.has_key_identifiers(ca.cert) and tls.has_key_identifiers(tls.read_certificate(master_path))
    assert ca.cert.public_key() == key.public_key() and ca.cert.subject == old.subject
    assert ca.cert.not_valid_after_utc == old.not_valid_after_utc
    assert open(os.path.join(data_dir, tls.CA_CERT), "rb").read() == ca.pem()
    assert tls.issued_by(tls.read_certificate(master_path), old_ca)  # (the old ca.pem of clients still verifies it)
    _strict_handshake(os.path.join(data_dir, tls.CA_CERT), master_path)
