"""The part of Confluent's schema registry REST API a producer and a consumer use, for
the Avro test: no schema registry can be installed from the package registries this
project may use (Confluent's and Apicurio's are Java services outside them; Karapace is
not on PyPI), so the test serves the two calls itself. What is checked is StreamCity's
side: it registers each topic's schema under `<topic>-value` and puts the id it gets in
every record, and fastavro, independently, decodes the records with the schema it
fetches by that id.

    schema_registry.py PORT

POST /subjects/<subject>/versions {"schema": "..."} -> {"id": N} (the same id for the
same schema); GET /schemas/ids/<N> -> {"schema": "..."}; GET /subjects -> [...].
Prints "listening" once it is, then serves until killed.
"""

import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOCK = threading.Lock()
SCHEMAS = []  # id - 1 -> schema text
SUBJECTS = {}  # subject -> [ids]


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def answer(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/vnd.schemaregistry.v1+json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):
        parts = self.path.strip("/").split("/")
        if len(parts) != 3 or parts[0] != "subjects" or parts[2] != "versions":
            return self.answer(404, {"error_code": 404, "message": "not found"})
        length = int(self.headers.get("Content-Length", "0"))
        try:
            schema = json.loads(self.rfile.read(length))["schema"]
            json.loads(schema)
        except (ValueError, KeyError, TypeError):
            return self.answer(422, {"error_code": 42201, "message": "invalid schema"})
        with LOCK:
            if schema not in SCHEMAS:
                SCHEMAS.append(schema)
            schema_id = SCHEMAS.index(schema) + 1
            SUBJECTS.setdefault(parts[1], [])
            if schema_id not in SUBJECTS[parts[1]]:
                SUBJECTS[parts[1]].append(schema_id)
        self.answer(200, {"id": schema_id})

    def do_GET(self):
        parts = self.path.strip("/").split("/")
        if parts == ["subjects"]:
            with LOCK:
                return self.answer(200, sorted(SUBJECTS))
        if len(parts) == 3 and parts[:2] == ["schemas", "ids"] and parts[2].isdigit():
            k = int(parts[2]) - 1
            with LOCK:
                if 0 <= k < len(SCHEMAS):
                    return self.answer(200, {"schema": SCHEMAS[k]})
            return self.answer(404, {"error_code": 40403, "message": "schema not found"})
        self.answer(404, {"error_code": 404, "message": "not found"})


def main():
    server = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler)
    print("listening", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
