"""One module per chapter of the book: its notebook's parameters, cross-checks and data.

=====================  ==================================  ===============================
module                 notebook                            paper
=====================  ==================================  ===============================
:mod:`.salinity`       ``01_salinity_ss_soilnet``          SS-SoilNet (salinity mapping)
:mod:`.transfer`       ``02_spectral_transfer_deepsalt``   DeepSalt (lab → satellite)
:mod:`.soc`            ``03_soc_ssl_soilnet``              SSL-SoilNet (SOC, pre-training)
:mod:`.moisture`       ``04_soil_moisture_convnext``       ConvNeXt V2 (soil moisture)
=====================  ==================================  ===============================

Each module exposes one :class:`~soilbook.chapters.common.Chapter` named ``CHAPTER``;
:mod:`soilbook.config` lists them (one line per chapter). What chapters share — the
:class:`~soilbook.chapters.common.Param` record and its checks, the ``seed`` / ``device`` /
``profile`` / ``output_dir`` parameters, the ``output_dir`` probe, the heads-divide-width and
memory helpers — lives in :mod:`soilbook.chapters.common`.

To add a chapter: write ``soilbook/chapters/<name>.py`` with ``PARAMS``, ``check``,
``load_data`` and ``CHAPTER = Chapter(...)``, then add its line to :data:`soilbook.config.CHAPTERS`.
"""
