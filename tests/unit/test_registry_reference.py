"""Docker's reference normalisation (distribution reference/normalize.go), as shoal parses it."""

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from shoal.errors import InvalidParameter
from shoal.registry.reference import Reference, from_api, parse

D = "sha256:" + "ab" * 32


@pytest.mark.parametrize(("text", "domain", "path", "tag", "digest", "familiar", "canonical"), [
    ("alpine", "docker.io", "library/alpine", "latest", None, "alpine:latest", "docker.io/library/alpine:latest"),
    ("alpine:3.10", "docker.io", "library/alpine", "3.10", None, "alpine:3.10", "docker.io/library/alpine:3.10"),
    ("docker.io/library/alpine", "docker.io", "library/alpine", "latest", None, "alpine:latest", None),
    ("index.docker.io/library/alpine:edge", "docker.io", "library/alpine", "edge", None, "alpine:edge", None),
    ("user/app", "docker.io", "user/app", "latest", None, "user/app:latest", "docker.io/user/app:latest"),
    ("docker.io/library/a/b", "docker.io", "library/a/b", "latest", None, "library/a/b:latest", None),
    ("127.0.0.1:5000/x/y:t", "127.0.0.1:5000", "x/y", "t", None, "127.0.0.1:5000/x/y:t", "127.0.0.1:5000/x/y:t"),
    ("localhost/app", "localhost", "app", "latest", None, "localhost/app:latest", None),
    ("localhost:5000/app", "localhost:5000", "app", "latest", None, "localhost:5000/app:latest", None),
    ("registry.example.com/ns/app", "registry.example.com", "ns/app", "latest", None, None, None),
    ("Registry.Example.com/app", "Registry.Example.com", "app", "latest", None, None, None),  # domains may have capitals
    (f"alpine@{D}", "docker.io", "library/alpine", None, D, f"alpine@{D}", f"docker.io/library/alpine@{D}"),
    (f"alpine:3@{D}", "docker.io", "library/alpine", "3", D, f"alpine:3@{D}", None),
    ("[::1]:5000/x", "[::1]:5000", "x", "latest", None, "[::1]:5000/x:latest", None),
    ("a:UPPER_tag", "docker.io", "library/a", "UPPER_tag", None, "a:UPPER_tag", None),
    ("a__b/c.d-e", "docker.io", "a__b/c.d-e", "latest", None, None, None),
])
def test_normalises(text, domain, path, tag, digest, familiar, canonical):
    ref = parse(text)
    assert (ref.domain, ref.path, ref.tag, ref.digest) == (domain, path, tag, digest)
    if familiar:
        assert ref.familiar == familiar
    if canonical:
        assert ref.canonical == canonical
    assert ref.remote == path


@pytest.mark.parametrize(("text", "message"), [
    ("Alpine", "invalid reference format: repository name must be lowercase"),
    ("user/App:tag", "invalid reference format: repository name must be lowercase"),
    ("127.0.0.1:5000/X", "invalid reference format: repository name must be lowercase"),
    ("", "invalid reference format"),
    ("a::b", "invalid reference format"),
    ("a/", "invalid reference format"),
    ("-a", "invalid reference format"),
    ("a:" + "t" * 129, "invalid reference format"),
    ("a@sha256:abc", "invalid reference format"),
    ("a@md5:" + "0" * 32, "unsupported digest algorithm: md5"),
    ("a" * 64 if False else "ab" * 32, f"invalid repository name ({'ab' * 32}), cannot specify 64-byte hexadecimal strings"),
    ("x/" + "a" * 250, "repository name must not be more than 255 characters"),
])
def test_refuses_in_dockers_words(text, message):
    with pytest.raises(InvalidParameter) as exc:
        parse(text)
    assert exc.value.message == message


def test_familiar_name_and_digest_form():
    ref = parse("docker.io/library/alpine:3")
    assert ref.familiar_name == "alpine" and ref.name == "docker.io/library/alpine"
    assert ref.with_digest(D).familiar == f"alpine@{D}"
    assert ref.reference == "3" and parse(f"alpine:3@{D}").reference == D


@pytest.mark.parametrize(("image", "tag", "expected"), [
    ("alpine", "", "alpine:latest"),
    ("alpine", None, "alpine:latest"),
    ("alpine", "3.10", "alpine:3.10"),
    ("alpine:3.9", "3.10", "alpine:3.10"),  # tag= wins over the name's own tag, as WithTag
    ("alpine:3.9", "", "alpine:3.9"),
    ("alpine:", "", "alpine:latest"),  # old `pull -a` sends a trailing colon
    ("alpine:3", D, f"alpine@{D}"),  # a digest in tag= replaces the tag (TrimNamed)
    ("127.0.0.1:5000/x", "v1", "127.0.0.1:5000/x:v1"),
])
def test_api_pair(image, tag, expected):
    assert from_api(image, tag).familiar == expected


def test_api_pair_refuses_bad_tag():
    with pytest.raises(InvalidParameter, match="invalid tag format"):
        from_api("alpine", "a b")
    with pytest.raises(InvalidParameter):
        from_api("alpine", "sha256:zz")


component = st.from_regex(r"[a-z0-9]{1,8}(?:[._-][a-z0-9]{1,8}){0,2}", fullmatch=True)
domains = st.sampled_from(["", "localhost/", "127.0.0.1:5000/", "reg.example.com/", "docker.io/", "index.docker.io/"])
tags = st.one_of(st.none(), st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}", fullmatch=True))
digests = st.one_of(st.none(), st.from_regex(r"[0-9a-f]{64}", fullmatch=True).map(lambda h: "sha256:" + h))


@given(domains, st.lists(component, min_size=1, max_size=3), tags, digests)
def test_round_trips(domain, parts, tag, digest):
    text = domain + "/".join(parts) + (f":{tag}" if tag else "") + (f"@{digest}" if digest else "")
    ref = parse(text)
    assert parse(ref.canonical) == ref
    # Docker's own quirk: docker.io/a.b/c prints as "a.b/c", which reads back as registry a.b
    assume(not (ref.domain == "docker.io" and "/" in ref.familiar_name and "." in ref.familiar_name.split("/")[0]))
    assert parse(ref.familiar) == ref
    assert isinstance(ref, Reference) and ref.canonical.startswith(ref.domain + "/")
    assert ref.tag == (tag or (None if digest else "latest")) and ref.digest == digest
