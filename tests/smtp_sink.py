"""An SMTP sink for the mail tests (tests/api/smtp.rs), served by aiosmtpd:

    python3 tests/smtp_sink.py DIR PORT

It prints "ready" once it listens on 127.0.0.1:PORT, and exits with an error
if it cannot, so a test never mistakes another server on that port for its own.

Each accepted message is written to DIR/NNNN.eml (to a temporary name first,
then renamed, so a reader never sees half a file). A test scripts the replies
through DIR/replies: one SMTP reply per line ("451 4.3.0 try again later"),
each used for one message and then dropped; with no lines left, messages are
accepted with "250 OK".
"""

import os
import sys
import threading


class Sink:
    def __init__(self, directory):
        self.directory = directory
        self.count = 0

    def next_scripted_reply(self):
        path = os.path.join(self.directory, "replies")
        try:
            with open(path) as f:
                lines = [line.strip() for line in f if line.strip()]
        except FileNotFoundError:
            return None
        if not lines:
            return None
        with open(path, "w") as f:
            f.write("".join(line + "\n" for line in lines[1:]))
        return lines[0]

    async def handle_DATA(self, server, session, envelope):
        reply = self.next_scripted_reply()
        if reply is not None:
            return reply
        self.count += 1
        name = os.path.join(self.directory, "%04d.eml" % self.count)
        with open(name + ".tmp", "wb") as f:
            f.write(b"X-Rcpt-To: " + ", ".join(envelope.rcpt_tos).encode() + b"\r\n")
            f.write(envelope.original_content)
        os.rename(name + ".tmp", name)
        return "250 OK"


if __name__ == "__main__":
    from aiosmtpd.controller import Controller

    directory, port = sys.argv[1], int(sys.argv[2])
    controller = Controller(Sink(directory), hostname="127.0.0.1", port=port)
    # Raises, and so exits non-zero, when the port is taken.
    controller.start()
    print("ready", flush=True)
    threading.Event().wait()
