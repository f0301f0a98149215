# -*- test-case-name: tests.unit.test_docs_links -*-
"""
Everything the docs, the code and the tests cite lives in the repository: every relative link in a Markdown
file resolves, every C{*.md} file named in code or tests exists, and nothing points outside the checkout.
"""

import os
import re

from twisted.trial import unittest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SKIP_DIRS = {".git", ".venv", "__pycache__", "build", "dist"}
LINK = re.compile(r"\]\(([^)\s]+)\)")
MD_NAME = re.compile(r"(?<![\w/.-])((?:[\w-]+/)*[\w-]+\.md)\b")


def files(*suffixes):
    """Paths of the checkout's files ending with one of C{suffixes}."""
    for folder, dirs, names in os.walk(REPO):
        dirs[:] = [d for d in dirs if d not in SKIP_DIRS and not d.startswith("_trial_temp")
                   and not d.endswith(".egg-info")]
        for name in names:
            if name.endswith(suffixes):
                yield os.path.join(folder, name)


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


class DocsLinkTests(unittest.TestCase):
    """Links and file names in the checkout resolve inside it."""

    def test_markdown_links_resolve(self):
        broken = []
        for path in files(".md"):
            for target in LINK.findall(read(path)):
                if target.startswith(("http://", "https://", "mailto:", "#")):
                    continue
                local = target.split("#", 1)[0]
                if not os.path.exists(os.path.normpath(os.path.join(os.path.dirname(path), local))):
                    broken.append(f"{os.path.relpath(path, REPO)}: {target}")
        self.assertEqual(broken, [])

    def test_markdown_files_named_in_code_exist(self):
        """A C{.md} file named in a comment or docstring is at that path, at the top or under docs/."""
        missing = []
        for path in files(".py", ".cfg", ".service", ".toml", ".md"):
            if os.path.samefile(path, __file__):
                continue
            for name in set(MD_NAME.findall(read(path))):
                candidates = [os.path.join(REPO, name), os.path.join(REPO, "docs", name),
                              os.path.join(os.path.dirname(path), name)]
                if not any(os.path.exists(c) for c in candidates):
                    missing.append(f"{os.path.relpath(path, REPO)}: {name}")
        self.assertEqual(missing, [])

    def test_nothing_points_outside_the_checkout(self):
        """No file refers to the founders' shared folder beside the checkout."""
        outside = [os.path.relpath(p, REPO) for p in files(".py", ".md", ".cfg", ".service", ".toml")
                   if not os.path.samefile(p, __file__) and re.search(r"\.\./shared\b", read(p))]
        self.assertEqual(outside, [])
