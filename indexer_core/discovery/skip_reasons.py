"""The reasons a file is left out of the index: one vocabulary for metadata, CLI and tables."""

IGNORED = "ignored"  # matched .gitignore, .git/info/exclude or .codeindexignore
TOO_LARGE = "too_large"
GENERATED = "generated"  # lock files, *.min.js and other machine-written files
MINIFIED = "minified"  # very long lines
BINARY = "binary"
SYMLINK = "symlink"  # points inside the repository: its target is indexed under its own path
SYMLINK_OUTSIDE = "symlink_outside"
SYMLINK_LOOP = "symlink_loop"
UNREADABLE = "unreadable"
VANISHED = "vanished"  # listed, then gone before it could be read
NOT_REGULAR = "not_regular"  # FIFO, socket, device
SUBMODULE = "submodule"
BAD_NAME = "bad_name"  # a file name that is not valid UTF-8 cannot be stored as text
