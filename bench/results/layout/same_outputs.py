# Part of bench/results/layout: compares two fixed_seed_run.sh folders byte for byte, timings masked.
# Compare two run.sh folders with timings masked: prints every difference, exit 1 if any.
import sys, os, re, zipfile, json, hashlib
A, B = sys.argv[1], sys.argv[2]
T = re.compile(r', [0-9]+ bytes\)|[0-9.]+ (samples|patterns)/s|"seconds": [0-9.e-]+|\(\d+\.\d s, [0-9.]+ samples/s\)|sha256 [0-9a-f]{64}|"(elapsed|seconds)[a-z_]*": [0-9.e-]+')
def norm(b):
    try: s = b.decode()
    except UnicodeDecodeError: return b
    s = T.sub('T', s)
    # history.json's per-epoch seconds list
    s = re.sub(r'\n\s+[0-9]\.[0-9]+,?(?=\n)', '\nT', s)  # bare seconds in lists
    s = re.sub(r'"created": "[^"]*"', 'T', s)
    s = re.sub(r'"[a-z_/]+params\.json": "[0-9a-f]{64}"', 'T', s)
    return s.encode()
bad = 0
files = sorted(os.path.relpath(os.path.join(d, f), A) for d, _, fs in os.walk(A) for f in fs if not f.endswith('.err') and f != '.ptycho.lock')
filesB = sorted(os.path.relpath(os.path.join(d, f), B) for d, _, fs in os.walk(B) for f in fs if not f.endswith('.err') and f != '.ptycho.lock')
if files != filesB: print('file lists differ', set(files) ^ set(filesB)); bad = 1
for f in files:
    pa, pb = os.path.join(A, f), os.path.join(B, f)
    if not os.path.exists(pb): continue
    if f.endswith('.zip'):
        za, zb = zipfile.ZipFile(pa), zipfile.ZipFile(pb)
        for i in za.namelist():
            x, y = za.read(i), zb.read(i)
            if i.endswith('.json'): x, y = norm(x), norm(y)
            if x != y: print('differs:', f, i); bad = 1
        continue
    if f.endswith('.sha256'): continue
    x, y = open(pa, 'rb').read(), open(pb, 'rb').read()
    if norm(x) != norm(y): print('differs:', f); bad = 1
print('identical (timings masked)' if not bad else 'DIFFERENT')
sys.exit(bad)
