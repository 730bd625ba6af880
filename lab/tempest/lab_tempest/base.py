# Shared plumbing for the lab's tempest stand-in: plain HTTP against the catalog's compute
# endpoint (the VIP once the upgrade has pointed keystone there).
import json
import os
import unittest
import urllib.request

COMPUTE_URL = os.environ.get("LAB_COMPUTE_URL", "http://127.0.1.100:8282/v2.1").rstrip("/")
ROOT_URL = COMPUTE_URL[: -len("/v2.1")] if COMPUTE_URL.endswith("/v2.1") else COMPUTE_URL
FAULT = os.environ.get("LAB_TEMPEST_FAULT", "")


def get(url, headers=None):
    req = urllib.request.Request(url, headers=headers or {})
    with urllib.request.urlopen(req, timeout=10) as resp:
        # HTTPMessage, not a dict: header names are case-insensitive, and HAProxy lowercases them.
        return resp.status, resp.headers, json.loads(resp.read().decode("utf-8"))


def microversion(text):
    major, minor = text.split(".")
    return int(major), int(minor)


class ComputeTest(unittest.TestCase):
    def setUp(self):
        # The lab's fault file names one test that must fail, to prove failures surface.
        if FAULT and self._testMethodName == FAULT:
            self.fail("lab fault injected: %s" % FAULT)
