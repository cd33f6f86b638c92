"""schemas._tree gives the elements lxml's ElementPath gives, for the child paths the mappings use."""

from __future__ import annotations

import pytest
from lxml import etree

from schemas._tree import Paths

NS = {"d": "urn:example:tree"}
DOC = b"""<r xmlns="urn:example:tree" xmlns:o="urn:example:other">
  <A><B>first-without-c</B></A>
  <A><B><C>c1</C></B><B><C>c2</C><C>c3</C></B></A>
  <o:A><B><C>other-namespace</C></B></o:A>
  <A/>
  <D> spaced  text </D>
  <E/>
</r>"""

PATHS = ["d:A", "d:A/d:B", "d:A/d:B/d:C", "d:D", "d:E", "d:X", "d:A/d:X", "d:B"]


@pytest.fixture(scope="module")
def root() -> etree._Element:
    return etree.fromstring(DOC)


@pytest.mark.parametrize("path", PATHS)
def test_find_is_elementpath_find(root: etree._Element, path: str) -> None:
    assert Paths(NS).find(root, path) is root.find(path, NS)


@pytest.mark.parametrize("path", PATHS)
def test_iter_is_elementpath_iterfind(root: etree._Element, path: str) -> None:
    assert list(Paths(NS).iter(root, path)) == list(root.iterfind(path, NS))


@pytest.mark.parametrize("path", PATHS)
def test_text_is_findtext(root: etree._Element, path: str) -> None:
    assert Paths(NS).text(root, path) == root.findtext(path, namespaces=NS)


def test_a_step_without_prefix_is_refused(root: etree._Element) -> None:
    with pytest.raises(ValueError, match="no namespace prefix"):
        Paths(NS).find(root, "A")


def test_an_unknown_prefix_is_refused(root: etree._Element) -> None:
    with pytest.raises(KeyError):
        Paths(NS).find(root, "x:A")
