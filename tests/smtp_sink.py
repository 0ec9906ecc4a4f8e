"""An SMTP sink for the mail tests (tests/api/mail.rs), run by aiosmtpd:

    python3 -m aiosmtpd -n -l 127.0.0.1:PORT -c smtp_sink.Sink DIR

Each accepted message is written to DIR/NNNN.eml (to a temporary name first,
then renamed, so a reader never sees half a file). A test scripts the replies
through DIR/replies: one SMTP reply per line ("451 4.3.0 try again later"),
each used for one message and then dropped; with no lines left, messages are
accepted with "250 OK".
"""

import os


class Sink:
    def __init__(self, directory):
        self.directory = directory
        self.count = 0

    @classmethod
    def from_cli(cls, parser, *args):
        if len(args) != 1:
            parser.error("Sink needs one argument: the directory to store mail in")
        return cls(args[0])

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
