# Independent reference for the sealed introduction (PROTOCOL §9.12): integer Ed25519 arithmetic,
# hmac for HKDF-SHA256, and AES-256-GCM from the `cryptography` package (the standard library has
# none). Run: python3 tests/Quid.Tests/Vectors/introduction.py; IntroductionTests holds what it prints.
import hashlib, hmac
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

P = 2**255 - 19
D = -121665 * pow(121666, P - 2, P) % P
L = 2**252 + 27742317777372353535851937790883648493
def _x(y, sign):
    xx = (y * y - 1) * pow(D * y * y + 1, P - 2, P)
    x = pow(xx, (P + 3) // 8, P)
    if (x * x - xx) % P: x = x * pow(2, (P - 1) // 4, P) % P
    assert (x * x - xx) % P == 0
    return P - x if x % 2 != sign else x
_BY = 4 * pow(5, P - 2, P) % P
B = (_x(_BY, 0), _BY)
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
def encode(p): return (p[1] | (p[0] & 1) << 255).to_bytes(32, 'little')
def decode(b):
    v = int.from_bytes(b, 'little'); y = v & ((1 << 255) - 1)
    return (_x(y, v >> 255), y)
def hkdf(ikm, salt, info, n=32):
    prk = hmac.new(salt, ikm, hashlib.sha256).digest()
    return hmac.new(prk, info + b'\x01', hashlib.sha256).digest()[:n]

# arti's key_blinding_testvec (KeyBlindingTests): the blinded public key A' and the blinded secret scalar a'.
blinded = bytes.fromhex('3A50BF210E8F9EE955AE0014F7A6917FB65EBF098A86305ABB508D1A7291B6D5')
a_blinded = int.from_bytes(bytes.fromhex('A958DC83AC885F6814C67035DE817A2C604D5D2F715282079448F789B656350B'), 'little')
assert encode(_mul(B, a_blinded)) == blinded

e = int.from_bytes(bytes([1] * 32), 'little')            # the ephemeral scalar, fixed for the vector
assert 0 < e < L
E = encode(_mul(B, e))
shared = encode(_mul(decode(blinded), e))
assert shared == encode(_mul(decode(E), a_blinded))      # what the service computes: a'·E
# count 2 | node id 00..13, cookie 14..27 | node id 28..3b, cookie 3c..4f | a third point's 40 zero bytes | X 50..6f
plain = bytes([2]) + bytes(range(0, 80)) + bytes(40) + bytes(range(80, 112))
k = hkdf(shared, blinded, b'quid introduction key' + E)
header = b'\x02' + E
sealed = header + AESGCM(k).encrypt(bytes(12), plain, header + blinded)
assert len(sealed) == 202
print('E', E.hex())
print('shared', shared.hex())
print('k', k.hex())
print('introduction', sealed.hex())
