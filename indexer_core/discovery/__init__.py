"""Discovery: which files a repository has, their content hashes, their text and language.

Every file is either listed for chunking or skipped with a recorded reason
(`skip_reasons`). In a git checkout git's own listing and blob ids are used; elsewhere a
walk with `.gitignore` semantics and a size+mtime fast path before hashing.
"""
