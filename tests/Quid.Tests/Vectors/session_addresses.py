# Independent reference for the Quid-specific derivations of issue 19 (addresses, secrets,
# period offsets, lookup ids, moving seeds): plain Python, hashlib and integer arithmetic only.
# Run: python3 tests/Quid.Tests/Vectors/session_addresses.py; the values it prints are the expected ones in tests/Quid.Tests/Services.
import base64, hashlib, hmac

# Ed25519 arithmetic from its definition (RFC 8032 §5.1), slow and plain: enough to turn a seed into a public key.
P = 2**255 - 19
D = -121665 * pow(121666, P - 2, P) % P
def _x(y):
    xx = (y * y - 1) * pow(D * y * y + 1, P - 2, P)
    x = pow(xx, (P + 3) // 8, P)
    if (x * x - xx) % P: x = x * pow(2, (P - 1) // 4, P) % P
    return P - x if x % 2 else x
_BY = 4 * pow(5, P - 2, P) % P
B = (_x(_BY), _BY)
def _add(p, q):
    (x1, y1), (x2, y2) = p, q
    t = D * x1 * x2 * y1 * y2
    return ((x1 * y2 + x2 * y1) * pow(1 + t, P - 2, P) % P, (y1 * y2 + x1 * x2) * pow(1 - t, P - 2, P) % P)
def _mul(p, e):
    r = (0, 1)
    while e:
        if e & 1: r = _add(r, p)
        p, e = _add(p, p), e >> 1
    return r
def _clamp(b):
    b = bytearray(b); b[0] &= 248; b[31] &= 63; b[31] |= 64
    return int.from_bytes(b, 'little')
def public_from_seed(seed):
    x, y = _mul(B, _clamp(hashlib.sha512(seed).digest()[:32]))
    return (y | (x & 1) << 255).to_bytes(32, 'little')

def b32(b): return base64.b32encode(b).decode().rstrip('=').lower()
def sha3(*parts): return hashlib.sha3_256(b''.join(parts)).digest()
def int8(n): return n.to_bytes(8, 'big')

def address(pub): return b32(pub + sha3(b'.quid checksum', pub, b'\x01')[:2] + b'\x01') + '.quid'
def secret_text(s): return 'quid-secret-' + b32(s + sha3(b'.quid secret checksum', s, b'\x01')[:2] + b'\x01')
def offset(material, minutes): return int.from_bytes(sha3(b'quid period offset', material)[:8], 'big') % minutes
def lookup(blinded, p, minutes): return sha3(b'quid lookup id', blinded, int8(p), int8(minutes))
def hkdf(ikm, info, n=32):
    prk = hmac.new(b'\0' * 32, ikm, hashlib.sha256).digest()  # RFC 5869: an empty salt is 32 zero bytes
    return hmac.new(prk, info + b'\x01', hashlib.sha256).digest()[:n]

pub = bytes.fromhex('833990B085C1A688C1D4C8B1F6B56AFAF5A2ECA674449E1D704F83765CCB7BC6')
blinded = bytes.fromhex('3A50BF210E8F9EE955AE0014F7A6917FB65EBF098A86305ABB508D1A7291B6D5')
print('address', address(pub))
print('offset/1440', offset(pub, 1440), 'offset/10', offset(pub, 10))
print('lookup', lookup(blinded, 1234, 1440).hex())
secret = bytes(range(32))
print('secret', secret_text(secret))
print('secret offset/1440', offset(secret, 1440))
for p in (0, 1, 20000):
    seed = hkdf(secret, b'quid moving address' + int8(p))
    print('moving', p, seed.hex(), address(public_from_seed(seed)))
