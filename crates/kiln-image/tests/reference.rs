//! Reference parsing, ported from distribution/reference's normalize tests, plus the cases
//! kiln relies on.

use kiln_image::{Digest, ImageRef, ReferenceError};

const D: &str = "sha256:dbcc1c35ac38df41fd2f5e4130b32ffdb93ebae8b3dbe638c23575912276fc9c";

#[test]
fn valid_repo_names() {
    for name in [
        "docker/docker",
        "library/debian",
        "debian",
        "docker.io/docker/docker",
        "docker.io/library/debian",
        "docker.io/debian",
        "index.docker.io/docker/docker",
        "index.docker.io/library/debian",
        "index.docker.io/debian",
        "127.0.0.1:5000/docker/docker",
        "127.0.0.1:5000/library/debian",
        "127.0.0.1:5000/debian",
        "192.168.0.1",
        "192.168.0.1:80",
        "192.168.0.1:8/debian",
        "192.168.0.2:25000/debian",
        "thisisthesongthatneverendsitgoesonandonandonthisisthesongthatnev",
        "[fc00::1]:5000/docker",
        "[fc00::1]:5000/docker/docker",
        "[fc00:1:2:3:4:5:6:7]:5000/library/debian",
        "docker.io/1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a",
        "Docker/docker",
        "DOCKER/docker",
        // TestValidateRemoteName
        "docker-rules/docker",
        "docker---rules/docker",
        "doc/docker",
        "d/docker",
        "jess/t",
        "dock__er/docker",
    ] {
        if let Err(e) = ImageRef::parse_named(name) {
            panic!("{name:?} should be valid: {e}");
        }
    }
}

#[test]
fn invalid_repo_names() {
    let long = format!(
        "{}/docker",
        "this_is_not_a_valid_namespace_because_its_lenth_is_greater_than_255_".repeat(4)
    );
    for name in [
        "https://github.com/docker/docker",
        "docker/Docker",
        "-docker",
        "-docker/docker",
        "-docker.io/docker/docker",
        "docker///docker",
        "docker.io/docker/Docker",
        "docker.io/docker///docker",
        "[fc00::1]",
        "[fc00::1]:5000",
        "fc00::1:5000/debian",
        "[fe80::1%eth0]:5000/debian",
        "[2001:db8:3:4::192.0.2.33]:5000/debian",
        "1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a",
        "docker-/docker",
        "-docker-/docker",
        "____/____",
        "_docker/_docker",
        "dock..er/docker",
        "dock_.er/docker",
        "dock-.er/docker",
        "docker/",
        "",
        "a:b:c",
        "foo:-bar",
        "foo@sha256:abc",
        &long,
    ] {
        assert!(
            ImageRef::parse_named(name).is_err(),
            "{name:?} should be invalid"
        );
    }
}

/// TestParseRepositoryInfo: (path, familiar, full, ambiguous, domain).
#[test]
fn repository_info() {
    let cases = [
        (
            "fooo/bar",
            "fooo/bar",
            "docker.io/fooo/bar",
            "index.docker.io/fooo/bar",
            "docker.io",
        ),
        (
            "library/ubuntu",
            "ubuntu",
            "docker.io/library/ubuntu",
            "library/ubuntu",
            "docker.io",
        ),
        (
            "nonlibrary/ubuntu",
            "nonlibrary/ubuntu",
            "docker.io/nonlibrary/ubuntu",
            "",
            "docker.io",
        ),
        (
            "other/library",
            "other/library",
            "docker.io/other/library",
            "",
            "docker.io",
        ),
        (
            "private/moonbase",
            "127.0.0.1:8000/private/moonbase",
            "127.0.0.1:8000/private/moonbase",
            "",
            "127.0.0.1:8000",
        ),
        (
            "privatebase",
            "127.0.0.1:8000/privatebase",
            "127.0.0.1:8000/privatebase",
            "",
            "127.0.0.1:8000",
        ),
        (
            "private/moonbase",
            "example.com/private/moonbase",
            "example.com/private/moonbase",
            "",
            "example.com",
        ),
        (
            "privatebase",
            "example.com/privatebase",
            "example.com/privatebase",
            "",
            "example.com",
        ),
        (
            "private/moonbase",
            "example.com:8000/private/moonbase",
            "example.com:8000/private/moonbase",
            "",
            "example.com:8000",
        ),
        (
            "privatebasee",
            "example.com:8000/privatebasee",
            "example.com:8000/privatebasee",
            "",
            "example.com:8000",
        ),
        (
            "library/ubuntu-12.04-base",
            "ubuntu-12.04-base",
            "docker.io/library/ubuntu-12.04-base",
            "index.docker.io/library/ubuntu-12.04-base",
            "docker.io",
        ),
        (
            "library/foo",
            "foo",
            "docker.io/library/foo",
            "docker.io/foo",
            "docker.io",
        ),
        (
            "library/foo/bar",
            "library/foo/bar",
            "docker.io/library/foo/bar",
            "",
            "docker.io",
        ),
        (
            "store/foo/bar",
            "store/foo/bar",
            "docker.io/store/foo/bar",
            "",
            "docker.io",
        ),
        ("bar", "Foo/bar", "Foo/bar", "", "Foo"),
        ("bar", "FOO/bar", "FOO/bar", "", "FOO"),
    ];
    for (path, familiar, full, ambiguous, domain) in cases {
        let mut inputs = vec![familiar, full];
        if !ambiguous.is_empty() {
            inputs.push(ambiguous);
        }
        for input in inputs {
            let r = ImageRef::parse_named(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(r.familiar(), familiar, "familiar of {input}");
            assert_eq!(r.repository_familiar(), familiar, "repository of {input}");
            assert_eq!(r.to_string(), full, "full of {input}");
            assert_eq!(r.domain(), domain, "domain of {input}");
            assert_eq!(r.path(), path, "path of {input}");
        }
    }
}

#[test]
fn split_hostname() {
    for (input, domain, path) in [
        ("test.com/foo", "test.com", "foo"),
        ("test_com/foo", "docker.io", "test_com/foo"),
        ("docker/migrator", "docker.io", "docker/migrator"),
        ("test.com:8080/foo", "test.com:8080", "foo"),
        ("test-com:8080/foo", "test-com:8080", "foo"),
        ("foo", "docker.io", "library/foo"),
        ("xn--n3h.com/foo", "xn--n3h.com", "foo"),
        ("xn--n3h.com:18080/foo", "xn--n3h.com:18080", "foo"),
        ("docker.io/foo", "docker.io", "library/foo"),
        ("docker.io/library/foo", "docker.io", "library/foo"),
        ("docker.io/library/foo/bar", "docker.io", "library/foo/bar"),
        ("localhost/busybox", "localhost", "busybox"),
        ("localhost:5000/a/b", "localhost:5000", "a/b"),
    ] {
        let r = ImageRef::parse_named(input).unwrap();
        assert_eq!((r.domain(), r.path()), (domain, path), "{input}");
    }
}

#[test]
fn tag_and_digest() {
    let short = format!("busybox:latest@{D}");
    let r = ImageRef::parse(&short).unwrap();
    assert_eq!(r.to_string(), format!("docker.io/library/{short}"));
    assert_eq!(r.tag(), Some("latest"));
    assert_eq!(r.digest(), Some(&Digest::parse(D).unwrap()));
    assert_eq!(r.familiar(), short);
    // ParseDockerRef drops the tag when a digest is present.
    assert_eq!(
        r.docker_ref().to_string(),
        format!("docker.io/library/busybox@{D}")
    );

    let r = ImageRef::parse(&format!("redis@{D}")).unwrap();
    assert_eq!(r.tag(), None, "a digest reference gets no default tag");
    assert_eq!(r.to_string(), format!("docker.io/library/redis@{D}"));
    assert_eq!(r.familiar(), format!("redis@{D}"));
}

#[test]
fn kiln_cases() {
    let cases = [
        (
            "node:18-alpine",
            "docker.io/library/node:18-alpine",
            "node:18-alpine",
            "node",
        ),
        (
            "node",
            "docker.io/library/node:latest",
            "node:latest",
            "node",
        ),
        (
            "localhost:5000/a/b:t",
            "localhost:5000/a/b:t",
            "localhost:5000/a/b:t",
            "localhost:5000/a/b",
        ),
        (
            "localhost/busybox",
            "localhost/busybox:latest",
            "localhost/busybox:latest",
            "localhost/busybox",
        ),
        (
            "dmcgowan/myapp",
            "docker.io/dmcgowan/myapp:latest",
            "dmcgowan/myapp:latest",
            "dmcgowan/myapp",
        ),
        (
            "docker.io/library/redis:7",
            "docker.io/library/redis:7",
            "redis:7",
            "redis",
        ),
        (
            "index.docker.io/redis",
            "docker.io/library/redis:latest",
            "redis:latest",
            "redis",
        ),
        (
            "ghcr.io/o/r:v1.2.3",
            "ghcr.io/o/r:v1.2.3",
            "ghcr.io/o/r:v1.2.3",
            "ghcr.io/o/r",
        ),
        (
            "192.168.0.1:80",
            "docker.io/library/192.168.0.1:80",
            "192.168.0.1:80",
            "192.168.0.1",
        ),
        (
            "dbcc1",
            "docker.io/library/dbcc1:latest",
            "dbcc1:latest",
            "dbcc1",
        ),
    ];
    for (input, full, familiar, repo) in cases {
        let r: ImageRef = input.parse().unwrap_or_else(|e| panic!("{input}: {e}"));
        assert_eq!(r.to_string(), full, "{input}");
        assert_eq!(r.familiar(), familiar, "{input}");
        assert_eq!(r.repository_familiar(), repo, "{input}");
        // Full and familiar forms parse back to the same reference.
        assert_eq!(ImageRef::parse(full).unwrap(), r);
        assert_eq!(ImageRef::parse(familiar).unwrap(), r);
    }
    let t = ImageRef::parse("busybox")
        .unwrap()
        .with_tag("1.36")
        .unwrap();
    assert_eq!(t.familiar(), "busybox:1.36");
    assert!(
        ImageRef::parse("busybox")
            .unwrap()
            .with_tag(".bad")
            .is_err()
    );
    let tag128 = "a".repeat(128);
    assert!(ImageRef::parse(&format!("x:{tag128}")).is_ok());
    assert!(ImageRef::parse(&format!("x:{tag128}b")).is_err());
}

#[test]
fn serde_is_the_full_string() {
    let r = ImageRef::parse("node:18").unwrap();
    let j = serde_json::to_string(&r).unwrap();
    assert_eq!(j, "\"docker.io/library/node:18\"");
    assert_eq!(serde_json::from_str::<ImageRef>(&j).unwrap(), r);
}

#[test]
fn docker_error_messages() {
    let msg = |s: &str| ImageRef::parse(s).unwrap_err().to_string();
    assert_eq!(msg("a:b:c"), "invalid reference format");
    assert_eq!(
        msg("Foo"),
        "invalid reference format: repository name (library/Foo) must be lowercase"
    );
    assert_eq!(
        msg("docker.io/docker/Docker"),
        "invalid reference format: repository name (docker/Docker) must be lowercase"
    );
    assert_eq!(
        msg("1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a"),
        "invalid repository name (1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a), cannot specify 64-byte hexadecimal strings"
    );
    let long = format!("{}/x", "a".repeat(250));
    assert_eq!(
        msg(&long),
        "invalid reference format: repository name must not be more than 255 characters"
    );
    let e = ImageRef::parse("a:b:c").unwrap_err();
    assert!(matches!(e, ReferenceError::InvalidFormat { .. }));
    assert_eq!(e.input(), "a:b:c");
    // A digest of the wrong length matches the grammar (32+ hex) but is not a sha256 digest.
    let e = ImageRef::parse(&format!("foo@sha256:{}", "a".repeat(40))).unwrap_err();
    assert!(matches!(e, ReferenceError::InvalidDigest { .. }), "{e}");
}
