"Count the code cells of a notebook that nbdev_test skips: those flagged with a test flag not enabled in this run."
import sys, json, re
from configparser import ConfigParser

def test_flags():
    cfg = ConfigParser(delimiters=['=']); cfg.read('settings.ini', encoding='utf-8')
    return set(cfg['DEFAULT'].get('tst_flags', '').split())

def skipped(nb_path, enabled):
    off = test_flags() - set(enabled)
    cells = json.load(open(nb_path, encoding='utf-8'))['cells']
    n = 0
    for c in cells:
        if c['cell_type'] != 'code': continue
        src = ''.join(c['source'])
        flags = {w for line in src.splitlines() if re.match(r'\s*#\s*\|', line)
                 for w in re.sub(r'^\s*#\s*\|\s*', '', line).split()}
        n += bool(flags & off)
    return n

if __name__ == '__main__':
    print(skipped(sys.argv[1], sys.argv[2].split() if len(sys.argv) > 2 else []))
