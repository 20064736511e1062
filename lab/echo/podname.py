"""Pod names shaped like a Deployment's: `<deployment>-<replicaset hash>-<pod hash>`.

The suite attributes weighted traffic to a backend by dropping the last two
`-`-separated parts of the echoed `pod` (echo-backend.md section 9), and checks
other answers by prefix `<deployment>-`. So every replica of one Deployment
shares the ReplicaSet hash and has its own pod hash, and neither hash contains
a `-`.

Invariants: hashes are drawn from the Kubernetes "safe" alphabet
(`k8s.io/apimachinery/pkg/util/rand`: no vowels, no 0/1/3, so no words and no
look-alike characters); the ReplicaSet hash is 10 characters, the pod hash 5.
"""

from __future__ import annotations

import random

ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
REPLICASET_HASH_LEN = 10
POD_HASH_LEN = 5


def random_string(length: int, rng: random.Random | None = None) -> str:
    """Returns: `length` characters from ALPHABET (like rand.String in apimachinery)."""
    pick = rng or random.SystemRandom()
    return "".join(pick.choice(ALPHABET) for _ in range(length))


def replicaset_name(deployment: str, rng: random.Random | None = None) -> str:
    """Returns: `<deployment>-<10-char hash>`, the name of one ReplicaSet of it."""
    return f"{deployment}-{random_string(REPLICASET_HASH_LEN, rng)}"


def pod_names(deployment: str, replicas: int, rng: random.Random | None = None) -> list[str]:
    """Returns: `replicas` distinct pod names sharing one ReplicaSet hash."""
    replicaset = replicaset_name(deployment, rng)
    names: list[str] = []
    while len(names) < replicas:
        name = f"{replicaset}-{random_string(POD_HASH_LEN, rng)}"
        if name not in names:
            names.append(name)
    return names


def pod_name(deployment: str, rng: random.Random | None = None) -> str:
    """Returns: one pod name for a single-replica Deployment."""
    return pod_names(deployment, 1, rng)[0]


def backend_of(pod: str) -> str:
    """Returns: the Deployment a pod name belongs to, as the suite derives it.

    Same rule as upstream `extractBackendName`: drop the last two `-` parts,
    or return the name unchanged when it has fewer than three parts.
    """
    parts = pod.split("-")
    if len(parts) < 3:
        return pod
    return "-".join(parts[:-2])
