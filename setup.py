"Install fbm_rank from the settings in settings.ini (nbdev 2 layout)."
from configparser import ConfigParser
import setuptools

cfg = ConfigParser(delimiters=['='])
cfg.read('settings.ini', encoding='utf-8')
cfg = cfg['DEFAULT']

licenses = {'apache2': ('Apache Software License 2.0', 'OSI Approved :: Apache Software License')}
lic = licenses[cfg['license']]
reqs = cfg.get('requirements', '').split()
dev_reqs = cfg.get('dev_requirements', '').split()
ray_reqs = cfg.get('ray_requirements', '').split()
scripts = [s.strip() for s in cfg.get('console_scripts', '').split() if s.strip()]

setuptools.setup(
    name=cfg['lib_name'], version=cfg['version'], description=cfg['description'],
    license=lic[0], author=cfg['author'], author_email=cfg['author_email'],
    keywords=cfg['keywords'], url=cfg['git_url'],
    long_description=open('README.md', encoding='utf-8').read(), long_description_content_type='text/markdown',
    classifiers=['Development Status :: 3 - Alpha', 'Intended Audience :: Developers',
                 'License :: ' + lic[1], 'Natural Language :: English',
                 'Programming Language :: Python :: 3.11'],
    packages=setuptools.find_packages(include=['fbm_rank', 'fbm_rank.*']),
    package_data={'fbm_rank': ['static/*']},
    include_package_data=True, python_requires='>=' + cfg['min_python'],
    install_requires=reqs, extras_require={'dev': dev_reqs, 'ray': ray_reqs},
    entry_points={'console_scripts': scripts, 'nbdev': [f"{cfg['lib_path']}={cfg['lib_path']}._modidx:d"]},
    zip_safe=False)
