"Generate README.md from nbs/index.ipynb with nbconvert (hidden cells left out); --check only compares."
import sys
from pathlib import Path
import nbformat
from nbconvert import MarkdownExporter
from nbconvert.preprocessors import Preprocessor

ROOT = Path(__file__).resolve().parent.parent

class DropHidden(Preprocessor):
    "Leave out cells that nbdev hides from the docs (`#| hide`)."
    def preprocess(self, nb, resources):
        nb.cells = [c for c in nb.cells if not c.source.lstrip().startswith('#| hide')]
        return nb, resources

def render()->str:
    nb = nbformat.read(ROOT/'nbs'/'index.ipynb', as_version=4)
    exporter = MarkdownExporter()
    exporter.register_preprocessor(DropHidden(), enabled=True)
    body, _ = exporter.from_notebook_node(nb)
    return '<!-- generated from nbs/index.ipynb by .ci/readme.py: edit the notebook, not this file -->\n\n' + body.strip() + '\n'

if __name__ == '__main__':
    text, readme = render(), ROOT/'README.md'
    if '--check' in sys.argv:
        if not readme.exists() or readme.read_text(encoding='utf-8') != text:
            sys.exit('README.md disagrees with nbs/index.ipynb: run python .ci/readme.py')
        print('README.md agrees with nbs/index.ipynb')
    else:
        readme.write_text(text, encoding='utf-8'); print('wrote', readme)
