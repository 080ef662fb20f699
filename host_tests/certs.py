"""Test certificates for wss:// (PyPI `cryptography`), written into a temporary directory.

    paths = make_certs(tmpdir)

A test CA signs a server certificate for "localhost" and 127.0.0.1 (the good server), and one
for "wrong.example" only (a server whose name does not match the URL's host). A second,
unrelated CA ("other CA") is the trust anchor a client must refuse the good server with.
Keys are EC P-256: quick to make, and every TLS stack here (CPython, MicroPython's mbedTLS)
speaks ECDSA. Returned dict:

    ca_pem, ca_der            path of the test CA (PEM), and the CA as DER bytes
    ca_pem_bytes              the CA as PEM bytes (what a device gets as `cadata`)
    cert, key                 server certificate (+ chain) and key for localhost/127.0.0.1
    wrong_cert, wrong_key     server certificate and key for "wrong.example" (same CA)
    other_ca_pem, other_ca_der, other_ca_pem_bytes   the unrelated CA
    client_cert, client_key   a charge point's client certificate (CN "CP1", O "Test CPO",
                              clientAuth) signed by the test CA, and its key (PEM paths)
    client_der, client_key_der   the same as DER bytes
    rogue_cert, rogue_key     a client certificate for "CP1" signed by the other CA
"""
import datetime
import ipaddress
import os

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


def _key():
    return ec.generate_private_key(ec.SECP256R1())


def _name(cn):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _validity(builder):
    now = datetime.datetime.now(datetime.timezone.utc)
    return builder.not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(
        now + datetime.timedelta(days=30))


def _ca(cn):
    key = _key()
    b = x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(_name(cn))
    b = _validity(b.public_key(key.public_key()).serial_number(x509.random_serial_number()))
    b = b.add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
    b = b.add_extension(x509.KeyUsage(
        digital_signature=True, content_commitment=False, key_encipherment=False,
        data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
        encipher_only=False, decipher_only=False), critical=True)
    b = b.add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                        critical=False)
    return key, b.sign(key, hashes.SHA256())


def _server(ca_key, ca_cert, cn, dns, ips):
    key = _key()
    b = x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(ca_cert.subject)
    b = _validity(b.public_key(key.public_key()).serial_number(x509.random_serial_number()))
    sans = [x509.DNSName(d) for d in dns] + [x509.IPAddress(ipaddress.ip_address(i))
                                             for i in ips]
    b = b.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    b = b.add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
    b = b.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                        critical=False)
    b = b.add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
        ca_key.public_key()), critical=False)
    return key, b.sign(ca_key, hashes.SHA256())


def _client(ca_key, ca_cert, cn):
    key = _key()
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Test CPO"),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    b = x509.CertificateBuilder().subject_name(name).issuer_name(ca_cert.subject)
    b = _validity(b.public_key(key.public_key()).serial_number(x509.random_serial_number()))
    b = b.add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
    b = b.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]),
                        critical=False)
    return key, b.sign(ca_key, hashes.SHA256())


def _pem(cert):
    return cert.public_bytes(serialization.Encoding.PEM)


def _write(dirpath, name, data):
    path = os.path.join(dirpath, name)
    with open(path, "wb") as f:
        f.write(data)
    return path


def _key_pem(key):
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def make_certs(dirpath):
    """Make the test CA, the other CA and both server certificates in `dirpath`."""
    os.makedirs(dirpath, exist_ok=True)
    ca_key, ca = _ca("Wallbox Test CA")
    other_key, other = _ca("Unrelated Test CA")
    srv_key, srv = _server(ca_key, ca, "localhost", ["localhost"], ["127.0.0.1"])
    wrong_key, wrong = _server(ca_key, ca, "wrong.example", ["wrong.example"], [])
    cli_key, cli = _client(ca_key, ca, "CP1")
    rogue_key, rogue = _client(other_key, other, "CP1")
    der = serialization.Encoding.DER
    return {
        "client_cert": _write(dirpath, "client.pem", _pem(cli)),
        "client_key": _write(dirpath, "client.key", _key_pem(cli_key)),
        "client_der": cli.public_bytes(der),
        "client_key_der": cli_key.private_bytes(der, serialization.PrivateFormat.PKCS8,
                                                serialization.NoEncryption()),
        "rogue_cert": _write(dirpath, "rogue.pem", _pem(rogue)),
        "rogue_key": _write(dirpath, "rogue.key", _key_pem(rogue_key)),
        "ca_pem": _write(dirpath, "ca.pem", _pem(ca)),
        "ca_der": ca.public_bytes(der),
        "ca_pem_bytes": _pem(ca),
        "cert": _write(dirpath, "server.pem", _pem(srv)),
        "key": _write(dirpath, "server.key", _key_pem(srv_key)),
        "wrong_cert": _write(dirpath, "wrong.pem", _pem(wrong)),
        "wrong_key": _write(dirpath, "wrong.key", _key_pem(wrong_key)),
        "other_ca_pem": _write(dirpath, "other_ca.pem", _pem(other)),
        "other_ca_der": other.public_bytes(der),
        "other_ca_pem_bytes": _pem(other),
    }
