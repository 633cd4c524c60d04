"""A stand-in for mmcv's compiled ``mmcv._ext``, for mmcv-lite installs.

The wheel holds one package and one ``.pth`` file. Python runs the ``.pth``
line at start-up, which appends a finder to ``sys.meta_path``; the finder
answers only for ``mmcv._ext`` and only when no compiled extension was found
first. Both files are listed in the wheel's RECORD, so ``pip uninstall
shufflenet-det-mmcv-ext`` removes them.
"""
import os

from setuptools import setup
from setuptools.command.build_py import build_py

PTH = 'shufflenet_det_mmcv_ext.pth'


class BuildPyWithPth(build_py):
    """Puts the ``.pth`` at the root of the wheel (site-packages once installed)."""

    def run(self):
        super().run()
        here = os.path.dirname(os.path.abspath(__file__))
        self.copy_file(os.path.join(here, PTH), os.path.join(self.build_lib, PTH))


setup(
    name='shufflenet-det-mmcv-ext',
    version='0.1.0',
    description="Stand-in for mmcv's compiled ops (nms, roi_align via torchvision) for mmcv-lite",
    packages=['shufflenet_det_mmcv_ext'],
    python_requires='>=3.8',
    cmdclass={'build_py': BuildPyWithPth},
)
