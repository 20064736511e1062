"""The Gateway API conformance suite as data (cases, manifests, phase edits); a status checker."""
