"""A real SMTP server for the alert tests: aiosmtpd (Debian python3-aiosmtpd)
on loopback, writing each message it accepts to DIR/N.eml, with lines
saying whether the session used TLS and AUTH.

usage: smtp_sink.py DIR PORT [CERT KEY USER PASSWORD]
With CERT and KEY, STARTTLS is offered and required, and AUTH with USER and
PASSWORD is required. Prints READY once it listens; runs until killed.
"""

import os
import ssl
import sys
import time

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult


class Sink:
    def __init__(self, out):
        self.out = out
        self.n = 0

    async def handle_DATA(self, server, session, envelope):
        self.n += 1
        path = os.path.join(self.out, f"{self.n}.eml")
        head = (
            f"X-Sink-From: {envelope.mail_from}\n"
            f"X-Sink-To: {', '.join(envelope.rcpt_tos)}\n"
            f"X-Sink-Tls: {'yes' if session.ssl is not None else 'no'}\n"
            f"X-Sink-Auth: {'yes' if session.authenticated else 'no'}\n"
        )
        body = envelope.content
        if isinstance(body, bytes):
            body = body.decode("utf-8", "replace")
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            f.write(head + body)
        os.rename(tmp, path)
        return "250 OK"


def main():
    out, port = sys.argv[1], int(sys.argv[2])
    kwargs = {}
    if len(sys.argv) >= 7:
        cert, key, user, password = sys.argv[3:7]
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(cert, key)

        def auth(server, session, envelope, mechanism, data):
            ok = data.login.decode() == user and data.password.decode() == password
            return AuthResult(success=ok, handled=False)

        kwargs = dict(
            tls_context=ctx,
            require_starttls=True,
            authenticator=auth,
            auth_required=True,
        )
    c = Controller(Sink(out), hostname="127.0.0.1", port=port, **kwargs)
    c.start()
    print("READY", flush=True)
    while True:
        time.sleep(3600)


main()
