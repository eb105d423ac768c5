"""CPython's json module as the reference for CordonJSONTests (DifferentialTests.swift).

    canonical.py FILE...          one line per file: its canonical form, or "ERROR <reason>"
    canonical.py --redump FILE... as above, and writes FILE.python: json.dumps(ensure_ascii=True)

The canonical form is one line that both sides compute the same way from a parsed value:
  null n, true t, false f
  a number with an integer value that fits 64 bits (signed or unsigned): i<decimal>;
  any other number: d<16 hex digits of the IEEE 754 double> (an integer beyond 64 bits as the
  double nearest it: what a parser that keeps 64-bit integers exact reads)
  a string: s<hex of its UTF-8>
  an array: [item,item]
  an object: {key:value,...} with each key once (its last value, as json.load keeps) and the
  keys sorted by their UTF-8 bytes; a key is written as a string is.
"""
import json, struct, sys

def number(x):
    if isinstance(x, bool):
        raise TypeError
    if isinstance(x, int):
        if -2**63 <= x < 2**64:
            return "i%d" % x
        x = float(x)
    elif x.is_integer() and -2**63 <= x < 2**64:
        return "i%d" % int(x)
    return "d" + struct.pack(">d", x).hex()

def text(s):
    return "s" + s.encode("utf-8", "surrogatepass").hex()

def canonical(v):
    if v is None: return "n"
    if v is True: return "t"
    if v is False: return "f"
    if isinstance(v, (int, float)): return number(v)
    if isinstance(v, str): return text(v)
    if isinstance(v, list): return "[" + ",".join(canonical(x) for x in v) + "]"
    keys = sorted(v, key=lambda k: k.encode("utf-8", "surrogatepass"))
    return "{" + ",".join(text(k) + ":" + canonical(v[k]) for k in keys) + "}"

redump = sys.argv[1:2] == ["--redump"]
for path in sys.argv[2 if redump else 1:]:
    try:
        with open(path, "rb") as f:
            value = json.loads(f.read().decode("utf-8"))
        line = canonical(value)
        if redump:
            with open(path + ".python", "w") as f:
                f.write(json.dumps(value, ensure_ascii=True, indent=1))
    except Exception as e:
        line = "ERROR %s" % type(e).__name__
    print(line)
