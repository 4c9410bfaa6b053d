"""The hostile requests of issue 22, as bytes: (case, request, expected status, accepted rules)."""
from tests.support.hostile import MAX_UPLOAD, bearer, multipart, request

RESPONSES = "django_http_responses_total_by_status_view_method_total"
ALICE = bearer("alice")
JSON = {**ALICE, "Content-Type": "application/json"}
CSV = b"city,temp\nOslo,3\nRome,18\n"


def _upload(parts, **headers):
    body, content_type = multipart(parts)
    return request("POST", "/api/imports/", {**ALICE, "Content-Type": content_type, **headers}, body)


def _chunked(body: bytes, size: int = 8192) -> bytes:
    return b"".join(b"%x\r\n" % len(body[i:i + size]) + body[i:i + size] + b"\r\n"
                    for i in range(0, len(body), size)) + b"0\r\n\r\n"


def chunked_upload(content: bytes) -> bytes:
    body, content_type = multipart([("file", "big.csv", content)])
    return request("POST", "/api/imports/", {**ALICE, "Content-Type": content_type, "Transfer-Encoding": "chunked"},
                   _chunked(body), length=False)


def _truncated() -> bytes:
    body, content_type = multipart([("file", "cut.csv", CSV * 50)])
    return request("POST", "/api/imports/", {**ALICE, "Content-Type": content_type}, body[:-40])


# (case, request bytes, status, accepted rules): one row per finding of issue 22.
CASES = [
    # 500s for client input
    ("report is a list", request("POST", "/api/exports/", JSON, b'{"report": []}'), 400, {"string"}),
    ("report is an object", request("POST", "/api/exports/", JSON, b'{"report": {}}'), 400, {"string"}),
    ("deeply nested JSON object", request("POST", "/api/exports/", JSON, b'{"a":' * 5000 + b"1" + b"}" * 5000),
     400, {"max_depth"}),
    ("deeply nested JSON list", request("POST", "/api/exports/", JSON, b"[" * 30000), 400, {"max_depth"}),
    ("non-ASCII Authorization", request("GET", "/api/jobs/x/", {"Authorization": b"Bearer \xc3\xa9\xff\xfe"}),
     401, {"known_token"}),
    ("no token", request("GET", "/api/jobs/x/"), 401, {"bearer_token"}),
    ("wrong scheme", request("GET", "/api/jobs/x/", {"Authorization": "Basic YTpi"}), 401, {"bearer_token"}),
    # rejected uploads, sizes
    ("Content-Length above the upload limit, body never sent",
     request("POST", "/api/imports/", {**ALICE, "Content-Type": "multipart/form-data; boundary=x",
                                       "Content-Length": str(50 * 1024 * 1024)}, b"", length=False), 413, {"max_bytes"}),
    ("3 MB export body, never sent",
     request("POST", "/api/exports/", {**JSON, "Content-Length": "3000000"}, b"", length=False), 413, {"max_bytes"}),
    ("chunked upload above the limit", chunked_upload(b"a,b\n" + b"1,2\n" * (MAX_UPLOAD // 3)), 413, {"max_bytes"}),
    ("file above the limit inside a small envelope", _upload([("file", "big.csv", b"a,b\n" + b"1,2\n" * (MAX_UPLOAD // 4))]),
     413, {"max_bytes"}),
    # one HTTP strictness on both tiers
    ("64 KB header", request("GET", "/healthz", {"X-Big": "a" * 65536}), 431, {"max_bytes", "limit_request_headers"}),
    ("1,000 headers", request("GET", "/healthz", [(f"X-H{i}", "v") for i in range(1000)]), 431,
     {"max_count", "limit_request_headers"}),
    ("Content-Length with Transfer-Encoding",
     request("POST", "/api/exports/", {**JSON, "Transfer-Encoding": "chunked"}, b"2\r\n{}\r\n0\r\n\r\n"), 400,
     {"content_length_with_transfer_encoding", "invalid_header"}),
    ("bare-LF line endings", b"GET /healthz HTTP/1.1\nHost: 127.0.0.1\nConnection: close\n\n", 400,
     {"crlf_line_endings", "invalid_request_line"}),
    ("header name with a space", request("GET", "/healthz", [("Bad Header", "x")]), 400,
     {"invalid_http_request", "invalid_header_name"}),
    ("request line over the limit", request("GET", "/healthz?" + "q" * 5000), 414, {"max_bytes", "limit_request_line"}),
    # errors that did not say what is wrong
    ("disallowed Host", request("GET", "/healthz", host="evil.example"), 400, {"allowed_hosts"}),
    ("GET on the upload URL", request("GET", "/api/imports/", ALICE), 405, {"allowed_methods"}),
    ("unknown method on /healthz", request("FOO", "/healthz"), 405, {"allowed_methods"}),
    ("DELETE on /healthz", request("DELETE", "/healthz"), 405, {"allowed_methods"}),
    ("upload that is not multipart", request("POST", "/api/imports/", {**ALICE, "Content-Type": "text/csv"}, CSV),
     415, {"multipart/form-data"}),
    ("truncated multipart body", _truncated(), 400, {"complete_body"}),
    ("missing file field", _upload([("other", None, b"x")]), 400, {"required"}),
    ("filename '..'", _upload([("file", "..", CSV)]), 400, {"required"}),
    ("broken multipart boundary",
     request("POST", "/api/imports/", {**ALICE, "Content-Type": "multipart/form-data; boundary="}, b"--\r\n"), 400,
     {"multipart"}),
    ("job id that is not a UUID", request("GET", "/api/jobs/not-a-uuid/", ALICE), 404, {"known_job"}),
    # CSV content (helper A's rules, reached through the API)
    ("NUL byte after the first 8 KB", _upload([("file", "nul.csv", b"a,b\n" + b"1,2\n" * 3000 + b"1,\x002\n")]),
     400, {"csv"}),
    ("header followed by blank lines only", _upload([("file", "blank.csv", b"a,b\n" + b"\n" * 30000)]), 400, {"csv"}),
]
