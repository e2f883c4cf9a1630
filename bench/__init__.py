"""The project's measuring instrument: `python -m bench run NAME --corpus CORPUS`.

Every figure is measured together with the limit it is compared against, in the same run,
and written as JSON plus a Markdown report naming the machine and the corpus.
"""
