"""Every number this project copies from the ShuffleNet V2 paper.

The one place a paper number lives (``tests/test_guidelines.py`` and
``tests/test_table7.py`` check each against the paper's text):

* **Tables 1-4** (Section 2, the four guidelines): widths and speeds of the
  micro-benchmarks, their input size and depth
  (used by :mod:`shufflenet_det.analysis.guidelines`).
* **Table 7** (detection): its rows and complexity levels, mmAP and GPU
  images/s (:data:`PAPER_TABLE7`), and the complexity column of the rows it
  compares, from Tables 5 and 8 (:data:`PAPER_COMPLEXITY`). Which backbone
  config fills which cell, and the rule that places a config, are this
  project's choices: :mod:`shufflenet_det.table7`.

It imports only the standard library: anything can import it cheaply.
"""
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

#: The paper.
PAPER = dict(URL='https://arxiv.org/abs/1807.11164',
             Title='ShuffleNet V2: Practical Guidelines for Efficient CNN '
             'Architecture Design')


# ----------------------------------------------------- Tables 1-4 (Section 2)
#: The paper's stated input size for Tables 1-3 (Table 4 does not say).
INPUT_SIZE = 56
#: "stacked repeatedly for 10 times" in every table.
NUM_BLOCKS = 10
#: Column multipliers of Tables 1 and 2: all channels x k (FLOPs x k^2).
MULTIPLIERS = (1, 2, 4)


@dataclass(frozen=True)
class PaperTable:
    """One of the paper's Tables 1-4, as printed.

    Attributes:
        number (int): Table number, 1-4.
        guideline (str): 'G1' ... 'G4'.
        title (str): What the guideline says.
        claim (str): What the paper concludes from the table.
        row_header (str): Name of the row variable.
        rows (tuple[str]): Row labels, in the paper's order.
        fastest (str): The row the guideline predicts to be fastest.
        widths (dict): Per platform ('gpu', 'arm'), the width of each column
            (Tables 3-4: one ``c`` per column) or of each row at x1 (Tables
            1-2: ``(c1, c2)`` or ``c``).
        speed (dict): Per platform, one row of speeds per variant, one value
            per column (GPU batches/s, ARM images/s).
    """
    number: int
    guideline: str
    title: str
    claim: str
    row_header: str
    rows: Tuple[str, ...]
    fastest: str
    widths: Dict[str, tuple]
    speed: Dict[str, Tuple[Tuple[float, ...], ...]]

    @property
    def per_row_widths(self) -> bool:
        """True for Tables 1-2 (width per row, columns are multipliers)."""
        return self.number in (1, 2)

    def column_labels(self, platform: str) -> List[str]:
        """Column headers as the paper prints them for ``platform``."""
        if self.per_row_widths:
            return [f'x{k}' for k in MULTIPLIERS]
        return [f'c={c}' for c in self.widths[platform]]


#: Tables 1-4 of the paper: widths and speeds copied from its text.
PAPER_TABLES = {
    1: PaperTable(
        number=1, guideline='G1',
        title='Equal channel width minimizes memory access cost (MAC)',
        claim='when c1:c2 is approaching 1:1, the MAC becomes smaller and '
        'the network evaluation speed is faster',
        row_header='c1:c2', rows=('1:1', '1:2', '1:6', '1:12'),
        fastest='1:1',
        widths=dict(gpu=((128, 128), (90, 180), (52, 312), (36, 432)),
                    arm=((32, 32), (22, 44), (13, 78), (9, 108))),
        speed=dict(gpu=((1480, 723, 232), (1296, 586, 206),
                        (876, 489, 189), (748, 392, 163)),
                   arm=((76.2, 21.7, 5.3), (72.9, 20.5, 5.1),
                        (69.1, 17.9, 4.6), (57.6, 15.1, 4.4)))),
    2: PaperTable(
        number=2, guideline='G2',
        title='Excessive group convolution increases MAC',
        claim='using 8 groups is more than two times slower than using 1 '
        'group on GPU and up to 30% slower on ARM',
        row_header='g', rows=('1', '2', '4', '8'), fastest='1',
        widths=dict(gpu=(128, 180, 256, 360), arm=(64, 90, 128, 180)),
        speed=dict(gpu=((2451, 1289, 437), (1725, 873, 341),
                        (1026, 644, 338), (634, 445, 230)),
                   arm=((40.0, 10.2, 2.3), (35.0, 9.5, 2.2),
                        (32.9, 8.7, 2.1), (27.8, 7.5, 1.8)))),
    3: PaperTable(
        number=3, guideline='G3',
        title='Network fragmentation reduces degree of parallelism',
        claim='fragmentation reduces the speed significantly on GPU, e.g. '
        '4-fragment structure is 3x slower than 1-fragment; on ARM, the '
        'speed reduction is relatively small',
        row_header='structure',
        rows=('1-fragment', '2-fragment-series', '4-fragment-series',
              '2-fragment-parallel', '4-fragment-parallel'),
        fastest='1-fragment',
        widths=dict(gpu=(128, 256, 512), arm=(64, 128, 256)),
        speed=dict(gpu=((2446, 1274, 434), (1790, 909, 336),
                        (752, 745, 349), (1537, 803, 320),
                        (691, 572, 292)),
                   arm=((40.2, 10.1, 2.3), (38.6, 10.1, 2.2),
                        (38.4, 10.1, 2.3), (33.4, 9.1, 2.2),
                        (35.0, 8.4, 2.1)))),
    4: PaperTable(
        number=4, guideline='G4',
        title='Element-wise operations are non-negligible',
        claim='around 20% speedup is obtained on both GPU and ARM, after '
        'ReLU and shortcut are removed',
        row_header='ReLU, shortcut',
        rows=('yes, yes', 'yes, no', 'no, yes', 'no, no'),
        fastest='no, no',
        widths=dict(gpu=(32, 64, 128), arm=(32, 64, 128)),
        speed=dict(gpu=((2427, 2066, 1436), (2647, 2256, 1735),
                        (2672, 2121, 1458), (2842, 2376, 1782)),
                   arm=((56.7, 16.9, 5.0), (61.9, 18.8, 5.2),
                        (57.3, 18.2, 5.1), (66.3, 20.2, 5.4)))),
}

#: The paper's unit per platform.
PAPER_UNIT = dict(gpu='batches/s', arm='images/s')
#: How the paper labels each platform column.
PAPER_PLATFORM = dict(gpu='GTX 1080Ti, cuDNN 7.0',
                      arm='Snapdragon 810, single thread')


# --------------------------------------------------- Table 7 (Section 4.2)
#: Table 7's rows, in the paper's order.
FAMILIES = ('Xception', 'ShuffleNet v1', 'MobileNet v2', 'ShuffleNet v2',
            'ShuffleNet v2*')

#: Table 7's columns: complexity levels, in MFLOPs at 224x224 (iterating
#: gives the column names in order).
LEVELS: Dict[str, int] = {'40M': 40, '140M': 140, '300M': 300, '500M': 500}

def _paper(model: str, mflops: Optional[float], source: str,
           mparams: Optional[float] = None) -> dict:
    return dict(model=model, mflops=mflops, mparams=mparams, source=source)


#: The paper's own complexity column for each cell of :data:`TABLE7_BACKBONES`
#: (``None`` where the paper prints no number). ``model`` names the row the
#: number comes from: Table 7's levels are these rows, so each cell's backbone
#: is the row's network (its width), not the nearest one to the level.
PAPER_COMPLEXITY: Dict[str, Dict[str, dict]] = {
    'Xception': {
        level: _paper(f'Xception {w} (our impl.)', f, 'Table 8')
        for level, w, f in zip(LEVELS, ('0.5x', '1x', '1.5x', '2x'),
                               (40, 145, 305, 525))
    },
    'ShuffleNet v1': {
        level: _paper(f'ShuffleNet v1 {w} (g=3)', f, 'Table 8')
        for level, w, f in zip(LEVELS, ('0.5x', '1x', '1.5x', '2x'),
                               (38, 140, 292, 524))
    },
    'MobileNet v2': {
        level: _paper(f'{w} MobileNet v2 (our impl.)', f, 'Table 8')
        for level, w, f in zip(LEVELS, ('0.15', '0.6', '1.0', '1.4'),
                               (39, 141, 301, 587))
    },
    'ShuffleNet v2': {
        level: _paper(f'ShuffleNet v2 {w}', f, 'Table 5', p)
        for level, w, f, p in zip(LEVELS, ('0.5x', '1x', '1.5x', '2x'),
                                  (41, 146, 299, 591), (1.4, 2.3, 3.5, 7.4))
    },
    # §4: "with only a few additional FLOPs"; the paper prints no number.
    'ShuffleNet v2*': {
        level: _paper(f'ShuffleNet v2* {w}', None, '§4 (no number given)')
        for level, w in zip(LEVELS, ('0.5x', '1x', '1.5x', '2x'))
    },
}

#: The paper's Table 7 (Ma et al., ECCV 2018): COCO minival mmAP (%) and GPU
#: images/s at batch 4, 800x1200 input, Light-Head R-CNN.
PAPER_TABLE7: Dict[str, Dict[str, Dict[str, float]]] = {
    'Xception': dict(mmap=dict(zip(LEVELS, (21.9, 29.0, 31.3, 32.9))),
                     gpu_images_per_s=dict(zip(LEVELS, (178, 131, 101, 83)))),
    'ShuffleNet v1': dict(mmap=dict(zip(LEVELS, (20.9, 27.0, 29.9, 32.9))),
                          gpu_images_per_s=dict(zip(LEVELS,
                                                    (152, 85, 76, 60)))),
    'MobileNet v2': dict(mmap=dict(zip(LEVELS, (20.7, 24.4, 30.0, 30.6))),
                         gpu_images_per_s=dict(zip(LEVELS,
                                                   (146, 111, 94, 72)))),
    'ShuffleNet v2': dict(mmap=dict(zip(LEVELS, (22.5, 29.0, 31.8, 33.3))),
                          gpu_images_per_s=dict(zip(LEVELS,
                                                    (188, 146, 109, 87)))),
    'ShuffleNet v2*': dict(mmap=dict(zip(LEVELS, (23.7, 29.6, 32.2, 34.2))),
                           gpu_images_per_s=dict(zip(LEVELS,
                                                     (183, 138, 105, 83)))),
}
