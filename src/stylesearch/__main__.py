"""`python -m stylesearch ...`, which is how `torchrun ... -m stylesearch train ...` starts each rank."""

from stylesearch.cli import app

if __name__ == "__main__":
    app()
