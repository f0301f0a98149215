"""
From a real daemon through a real Carbon to a picture: the daemon sends its metrics to Debian's carbon-cache
(on loopback, private config and whisper dir, 1 s resolution), Debian's graphite-web reads those whisper
files and draws a graph through its render API. graphite-web runs standalone: its Django WSGI application
served by Twisted's WSGI server (Debian's python3 and python3-twisted, which graphite-carbon brings),
with a private settings module (C{GRAPHITE_SETTINGS_MODULE}) pointing at the test's dirs. The PNG is decoded
here and checked to be an image of the series: the asked size, and the series' colour drawn on it.

With CONTAINERD_TX_SAVE_RENDER=<path> the dashboard-like picture is kept there (the README's
docs/img/graphite-render.png is made so).
"""

import json
import os
import shutil
import struct
import urllib.parse
import urllib.request
import zlib

from tests.integration.test_graphite import CARBON_CACHE, Carbon, system_env
from tests.integration.test_lifecycle import LifecycleTestCase
from tests.support.daemon import wait_for
from tests.support.ids import unique_id
from tests.support.net import free_port
from tests.support.servers import ServerProcess

GRAPHITE_WEB = "/usr/lib/python3/dist-packages/graphite/wsgi.py"
SYSTEM_PYTHON = "/usr/bin/python3"
PREFIX = "containerd-tx.render"

SETTINGS = """\
SECRET_KEY = "containerd-tx-test-only"
GRAPHITE_ROOT = "/usr/share/graphite-web"
STATIC_ROOT = "/usr/share/graphite-web/static"
CONF_DIR = {root!r} + "/conf"
STORAGE_DIR = {root!r} + "/storage"
WHISPER_DIR = {whisper!r}
STANDARD_DIRS = [{whisper!r}]
INDEX_FILE = {root!r} + "/storage/index"
LOG_DIR = {root!r} + "/log"
LOG_ROTATION = False
LOG_RENDERING_PERFORMANCE = False
LOG_CACHE_PERFORMANCE = False
DEFAULT_XFILES_FACTOR = 0
FUNCTION_PLUGINS = []
CARBONLINK_HOSTS = []
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
TIME_ZONE = "UTC"
DATABASES = {{"default": {{"NAME": {root!r} + "/graphite.db", "ENGINE": "django.db.backends.sqlite3",
                          "USER": "", "PASSWORD": "", "HOST": "", "PORT": ""}}}}
"""


class GraphiteWeb(ServerProcess):
    """graphite-web's WSGI app under C{twist web} on a loopback port, its settings and logs in C{root}."""

    def __init__(self, root, port, whisper_dir):
        super().__init__(root, port, "graphite-web.out")
        for sub in ("conf", "storage", "log", "settings"):
            os.makedirs(os.path.join(root, sub), exist_ok=True)
        with open(os.path.join(root, "settings", "containerd_tx_graphite_settings.py"), "w") as f:
            f.write(SETTINGS.format(root=root, whisper=whisper_dir))

    def start(self):
        env = system_env()
        env.update(PYTHONPATH=os.path.join(self.root, "settings"), DJANGO_SETTINGS_MODULE="graphite.settings",
                   GRAPHITE_SETTINGS_MODULE="containerd_tx_graphite_settings")
        self.spawn([SYSTEM_PYTHON, "-m", "twisted", "web", "--listen", f"tcp:{self.port}:interface=127.0.0.1",
                    "--wsgi", "graphite.wsgi.application"], env=env)

    def get(self, **params):
        """GET /render with C{params}: (content type, body)."""
        query = urllib.parse.urlencode(params, doseq=True)
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/render?{query}", timeout=30) as response:
            return response.headers.get("content-type", ""), response.read()

    def ready(self):
        if self.process.poll() is not None:
            raise AssertionError(f"graphite-web exited with {self.process.returncode}:\n{self.log()}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/version/", timeout=5) as response:
                return response.status == 200
        except OSError:
            return False

    def points(self, target, since="-10min"):
        """The non-null (timestamp, value) points of C{target} through the render API's JSON."""
        _, body = self.get(target=target, format="json", **{"from": since})
        series = json.loads(body)
        if not series:
            return []
        return [(t, v) for v, t in series[0]["datapoints"] if v is not None]


def decode_png(data):
    """
    An 8-bit non-interlaced PNG (greyscale, RGB, grey+alpha or RGBA; what cairo writes) as
    C{(width, height, rows)}, each row a list of RGB tuples.
    """
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG")
    offset, chunks, idat = 8, {}, []
    while offset < len(data):
        (length,) = struct.unpack(">I", data[offset:offset + 4])
        kind = data[offset + 4:offset + 8]
        body = data[offset + 8:offset + 8 + length]
        if zlib.crc32(kind + body) != struct.unpack(">I", data[offset + 8 + length:offset + 12 + length])[0]:
            raise ValueError(f"bad CRC in {kind!r}")
        if kind == b"IDAT":
            idat.append(body)
        else:
            chunks[kind] = body
        offset += 12 + length
        if kind == b"IEND":
            break
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", chunks[b"IHDR"])
    channels = {0: 1, 2: 3, 4: 2, 6: 4}[colour]
    if depth != 8 or interlace:
        raise ValueError(f"unsupported PNG: depth {depth}, interlace {interlace}")
    raw = zlib.decompress(b"".join(idat))
    stride = width * channels
    rows, previous, position = [], bytearray(stride), 0
    for _ in range(height):
        kind, line = raw[position], bytearray(raw[position + 1:position + 1 + stride])
        position += 1 + stride
        for i in range(stride):
            left = line[i - channels] if i >= channels else 0
            up = previous[i]
            upper_left = previous[i - channels] if i >= channels else 0
            if kind == 1:
                line[i] = (line[i] + left) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + up) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 0xFF
            elif kind == 4:
                p = left + up - upper_left
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - upper_left)
                predictor = left if pa <= pb and pa <= pc else (up if pb <= pc else upper_left)
                line[i] = (line[i] + predictor) & 0xFF
        previous = line
        if channels in (1, 2):
            rows.append([(line[x], line[x], line[x]) for x in range(0, stride, channels)])
        else:
            rows.append([tuple(line[x:x + 3]) for x in range(0, stride, channels)])
    return width, height, rows


class GraphiteRenderTests(LifecycleTestCase):

    def setUp(self):
        if not os.path.exists(CARBON_CACHE):
            self.skipTest(f"{CARBON_CACHE} missing (Debian package graphite-carbon): run scripts/setup-system")
        if not (os.path.exists(GRAPHITE_WEB) and os.path.exists(SYSTEM_PYTHON)):
            self.skipTest(f"{GRAPHITE_WEB} missing (Debian package graphite-web): run scripts/setup-system")
        root = os.path.abspath(self.mktemp())
        self.carbon = Carbon(os.path.join(root, "carbon"), free_port())
        self.addCleanup(self.carbon.stop)
        self.carbon.start()
        wait_for(lambda: _listening(self.carbon.port), timeout=30, message="carbon to listen")
        self.web = GraphiteWeb(os.path.join(root, "web"), free_port(),
                               os.path.join(self.carbon.root, "storage", "whisper"))
        self.addCleanup(self.web.stop)
        self.web.start()
        self.daemon_args = ("--graphite-address", f"127.0.0.1:{self.carbon.port}", "--metrics-interval", "1s",
                            "--id", PREFIX.split(".")[1])
        super().setUp()
        wait_for(self.web.ready, timeout=60, message="graphite-web to answer /version/")

    def test_render_running_containers(self):
        target = f"{PREFIX}.containers.value"
        # Containers come one by one, each once the last has reached whisper: a rising series.
        running = 5
        for count in range(1, running + 1):
            self.start(unique_id("gr"), "sleep", "1000")
            wait_for(lambda: any(value == count for _, value in self.web.points(target)), timeout=60,
                     message=f"{target} = {count} through graphite-web:\n{self.web.log()}")
        wait_for(lambda: len(self.web.points(target)) >= 2 * running, timeout=60,
                 message=f"{2 * running} points of {target}")
        self.assertEqual(max(value for _, value in self.web.points(target)), running)

        width, height = 640, 300
        content_type, png = self.web.get(target=target, format="png", width=width, height=height,
                                         bgcolor="ffffff", fgcolor="000000", colorList="ff0000", lineWidth=3,
                                         hideLegend="true", **{"from": "-5min"})
        self.assertEqual(content_type, "image/png")
        decoded_width, decoded_height, rows = decode_png(png)
        self.assertEqual((decoded_width, decoded_height), (width, height))
        pixels = [pixel for row in rows for pixel in row]
        background = sum(1 for pixel in pixels if pixel == (255, 255, 255))
        red = sum(1 for r, g, b in pixels if r > 200 and g < 80 and b < 80)
        self.assertGreater(background, len(pixels) // 2)  # mostly background: a chart, not noise
        self.assertGreater(len(pixels) - background, 1000)  # axes, labels and the line
        self.assertGreater(red, 50)  # the series itself is drawn
        # The line climbs: red pixels lie higher (smaller y) on the right than on the left of the plot.
        red_rows = {x: [y for y in range(height) if rows[y][x][0] > 200 and rows[y][x][1] < 80]
                    for x in range(width)}
        columns = [x for x, ys in red_rows.items() if ys]
        left, right = columns[:len(columns) // 4], columns[-len(columns) // 4:]
        self.assertLess(sum(min(red_rows[x]) for x in right) / len(right),
                        sum(min(red_rows[x]) for x in left) / len(left))

        # No image of a missing series: graphite-web answers an empty JSON list.
        _, body = self.web.get(target=f"{PREFIX}.no-such-metric.value", format="json", **{"from": "-5min"})
        self.assertEqual(json.loads(body), [])

        self.save_picture()

    def save_picture(self):
        """The README's picture: containers, events and start time p99 as graphite-web draws them."""
        path = os.environ.get("CONTAINERD_TX_SAVE_RENDER")
        if not path:
            return
        _, png = self.web.get(
            target=[f"alias({PREFIX}.containers.value, 'running containers')",
                    f"alias(perSecond({PREFIX}.events.count), 'events/s')",
                    f"alias(secondYAxis({PREFIX}.container-start-time.p99), 'start time p99 (ms, right)')",
                    f"alias({PREFIX}.threads.value, 'threads')"],
            format="png", width=800, height=360, bgcolor="ffffff", fgcolor="222222", majorGridLineColor="dddddd",
            minorGridLineColor="f2f2f2", lineWidth=2, title="containerd-tx on Graphite (graphite-web render API)",
            colorList="d62728,1f77b4,2ca02c,9467bd", **{"from": "-30s"})
        decode_png(png)
        with open(path + ".tmp", "wb") as f:
            f.write(png)
        shutil.move(path + ".tmp", path)


def _listening(port):
    import socket

    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        return True
    except OSError:
        return False
