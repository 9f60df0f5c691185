"""A webhook receiver for the notification test: checks each body's HMAC-SHA256
signature with Python's own hmac module (an implementation independent of the
notifier's), answers 503 to the first FAIL_FIRST requests, 400 to alerts whose id
starts with "reject", 200 otherwise, and logs each request it answered as a JSON line.

usage: webhook_receiver.py PORT SECRET FAIL_FIRST LOG
"""

import hashlib
import hmac
import json
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer

port, secret, fail_first, log_path = int(sys.argv[1]), sys.argv[2].encode(), int(sys.argv[3]), sys.argv[4]
seen = {"requests": 0}


class Receiver(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        seen["requests"] += 1
        expected = "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()
        signed = hmac.compare_digest(expected, self.headers.get("X-StreamCity-Signature", ""))
        key = self.headers.get("Idempotency-Key", "")
        event = json.loads(body)
        if seen["requests"] <= fail_first:
            status = 503
        elif not signed:
            status = 401
        elif event["alert"]["alert_id"].startswith("reject"):
            status = 400
        else:
            status = 200
        with open(log_path, "a") as log:
            log.write(json.dumps({"status": status, "signed": signed, "key": key,
                                  "body_key": event["idempotency_key"], "event": event["event"]}) + "\n")
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


HTTPServer(("127.0.0.1", port), Receiver).serve_forever()
