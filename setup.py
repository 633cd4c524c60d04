from setuptools import find_packages, setup

setup(
    name='shufflenet_det',
    version='0.1.0',
    description='ShuffleNet V2 detection experiments (Table 7) as MMDetection 3.x components',
    packages=find_packages(include=['shufflenet_det', 'shufflenet_det.*']),
    python_requires='>=3.9',
)
