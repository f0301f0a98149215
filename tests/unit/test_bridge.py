"""
Tests for L{containerd_tx.bridge}: the door between grpcio's threads and the reactor thread.

These use the real reactor and real threads (through L{threads.deferToThread}), because what is tested is
which thread runs what.
"""

import threading

from twisted.internet import defer, reactor, threads
from twisted.internet.task import deferLater
from twisted.python import threadable
from twisted.trial.unittest import SynchronousTestCase, TestCase

from containerd_tx import errors
from containerd_tx.bridge import ReactorBridge, StreamFeed



class Aborted(Exception):
    """What the fake context raises from abort(), as grpc's does."""


class FakeContext:
    """
    A gRPC servicer context: abort() records the code and message and raises; is_active() is settable.
    """

    def __init__(self):
        self.aborts = []
        self.active = True
        self.callbacks = []

    def abort(self, code, details):
        self.aborts.append((code, details))
        raise Aborted(code, details)

    def is_active(self):
        return self.active

    def add_callback(self, callback):
        self.callbacks.append(callback)


class RecordingReactor:
    """
    Just enough reactor for a L{StreamFeed} or L{ReactorBridge}: callFromThread only records the call.
    """

    def __init__(self):
        self.calls = []

    def callFromThread(self, f, *args, **kwargs):
        self.calls.append((f, args, kwargs))

    def run_calls(self):
        calls, self.calls = self.calls, []
        for f, args, kwargs in calls:
            f(*args, **kwargs)


class InReactorTestCase(TestCase):
    """
    A test case whose tests run inside the running reactor, so that the reactor thread is registered as the I/O
    thread (trial starts the reactor lazily; the first test of a process would otherwise run before that).
    """

    def setUp(self):
        return deferLater(reactor, 0, lambda: None)


class ReactorBridgeCallTests(InReactorTestCase):
    """
    L{ReactorBridge.call} runs work in the reactor thread for callers in other threads.
    """

    def setUp(self):
        self.bridge = ReactorBridge(reactor)
        return super().setUp()

    def call_from_thread(self, fn, *args, **kwargs):
        """
        Call C{self.bridge.call(fn, ...)} from a thread pool thread; fires with the result.
        """
        return threads.deferToThread(self.bridge.call, fn, *args, **kwargs)

    @defer.inlineCallbacks
    def test_runs_in_reactor_thread(self):
        """
        The callable runs in the reactor thread, not in the caller's; arguments reach it and its plain result
        comes back.
        """
        reactor_thread = threading.current_thread()
        self.assertTrue(threadable.isInIOThread())
        seen = {}

        def fn(a, b=None):
            seen["thread"] = threading.current_thread()
            seen["io"] = threadable.isInIOThread()
            return (a, b)

        def caller():
            seen["caller"] = threading.current_thread()
            return self.bridge.call(fn, 1, b="two")

        result = yield threads.deferToThread(caller)
        self.assertEqual(result, (1, "two"))
        self.assertIs(seen["thread"], reactor_thread)
        self.assertTrue(seen["io"])
        self.assertIsNot(seen["caller"], reactor_thread)

    @defer.inlineCallbacks
    def test_plain_values(self):
        """
        None and other plain values come back as they are.
        """
        self.assertIsNone((yield self.call_from_thread(lambda: None)))
        marker = object()
        self.assertIs((yield self.call_from_thread(lambda: marker)), marker)

    @defer.inlineCallbacks
    def test_deferred_result(self):
        """
        A Deferred's eventual result is what the caller gets; the caller waits for it.
        """
        pending = defer.Deferred()
        d = self.call_from_thread(lambda: pending)
        yield deferLater(reactor, 0.01, lambda: None)
        self.assertNoResult(d)
        pending.callback("later")
        self.assertEqual((yield d), "later")

    @defer.inlineCallbacks
    def test_coroutine_result(self):
        """
        A coroutine is run to completion in the reactor thread; its result is what the caller gets.
        """
        seen = []

        async def fn(value):
            await deferLater(reactor, 0.001, lambda: None)
            seen.append(threadable.isInIOThread())
            return value * 2

        self.assertEqual((yield self.call_from_thread(fn, 21)), 42)
        self.assertEqual(seen, [True])

    @defer.inlineCallbacks
    def test_errors_reraised(self):
        """
        ContainerdErrors, raised directly, by a Deferred or by a coroutine, reach the caller as themselves.
        """

        def raises():
            raise errors.NotFound("no such container 'x'")

        def fails():
            return defer.fail(errors.FailedPrecondition("container is paused"))

        async def coroutine_raises():
            await deferLater(reactor, 0, lambda: None)
            raise errors.AlreadyExists("container 'x' already exists")

        for fn, error_type, message in (
            (raises, errors.NotFound, "no such container 'x'"),
            (fails, errors.FailedPrecondition, "container is paused"),
            (coroutine_raises, errors.AlreadyExists, "container 'x' already exists"),
        ):
            error = yield self.assertFailure(self.call_from_thread(fn), error_type)
            self.assertEqual(error.message, message)

    @defer.inlineCallbacks
    def test_unexpected_errors_reraised(self):
        """
        Other exceptions reach the caller too (the API layer turns them into INTERNAL).
        """

        def raises():
            raise KeyError("k")

        yield self.assertFailure(self.call_from_thread(raises), KeyError)

    def test_from_reactor_thread(self):
        """
        A call from the reactor thread itself raises RuntimeError at once instead of deadlocking, and does not
        run the callable.
        """
        called = []
        self.assertTrue(threadable.isInIOThread())
        with self.assertRaises(RuntimeError) as caught:
            self.bridge.call(called.append, 1)
        self.assertIn("deadlock", str(caught.exception))
        self.assertEqual(called, [])

    @defer.inlineCallbacks
    def test_after_close(self):
        """
        After close(), calls fail with Unavailable and the callable never runs.
        """
        called = []
        self.bridge.close()
        yield self.assertFailure(self.call_from_thread(called.append, 1), errors.Unavailable)
        yield deferLater(reactor, 0.01, lambda: None)
        self.assertEqual(called, [])

    @defer.inlineCallbacks
    def test_reactor_does_not_answer(self):
        """
        When the reactor does not run the call within the timeout, the caller gets Unavailable.
        """
        bridge = ReactorBridge(RecordingReactor(), timeout=0.05)
        yield self.assertFailure(threads.deferToThread(bridge.call, lambda: 1), errors.Unavailable)


def _consume(feed, context, poll=0.01):
    """
    Drain C{feed.items(context)} (meant for a non-reactor thread): returns (items, error or None).
    """
    got = []
    try:
        for item in feed.items(context, poll=poll):
            got.append(item)
    except errors.ContainerdError as e:
        return got, e
    return got, None


class StreamFeedTests(InReactorTestCase):
    """
    L{StreamFeed} hands items from the reactor to one consumer thread without ever blocking the reactor.
    """

    def make_feed(self, limit):
        self.closes = []
        self.closed_deferred = defer.Deferred()

        def on_close():
            self.closes.append((threading.current_thread(), threadable.isInIOThread()))
            if not self.closed_deferred.called:
                self.closed_deferred.callback(None)

        return StreamFeed(reactor, limit, on_close=on_close)

    @defer.inlineCallbacks
    def test_items_then_finish(self):
        """
        The consumer gets every pushed item in order, and items() ends after finish().
        """
        feed = self.make_feed(10)
        self.assertTrue(feed.push(1))
        self.assertTrue(feed.push(2))
        d = threads.deferToThread(_consume, feed, FakeContext())
        yield deferLater(reactor, 0.02, lambda: None)
        self.assertTrue(feed.push(3))
        feed.finish()
        self.assertTrue(feed.closed)
        got, error = yield d
        self.assertEqual(got, [1, 2, 3])
        self.assertIsNone(error)
        self.assertEqual(len(self.closes), 1)
        self.assertTrue(self.closes[0][1])

    def test_finish_at_limit(self):
        """
        finish() on a feed holding exactly C{limit} items still delivers them all and ends normally.
        """
        feed = self.make_feed(3)
        self.assertEqual([feed.push(i) for i in range(3)], [True, True, True])
        feed.finish()
        self.assertEqual(_consume(feed, FakeContext()), ([0, 1, 2], None))

    def test_finish_once(self):
        """
        finish() twice calls on_close once; pushes after it are refused.
        """
        feed = self.make_feed(3)
        feed.finish()
        feed.finish()
        self.assertEqual(len(self.closes), 1)
        self.assertFalse(feed.push("late"))
        self.assertEqual(_consume(feed, FakeContext()), ([], None))

    def test_overflow(self):
        """
        After C{limit} undelivered items push() refuses, the feed closes (on_close once, in the reactor thread),
        and the consumer gets the earlier items and then ResourceExhausted.
        """
        limit = 5
        feed = self.make_feed(limit)
        results = [feed.push(i) for i in range(10 * limit)]
        self.assertEqual(results, [True] * limit + [False] * 9 * limit)
        self.assertTrue(feed.closed)
        self.assertEqual(len(self.closes), 1)
        self.assertTrue(self.closes[0][1])
        got, error = _consume(feed, FakeContext())
        self.assertEqual(got, list(range(limit)))
        self.assertIsInstance(error, errors.ResourceExhausted)
        self.assertIn("resubscribe", error.message)
        feed.finish()
        self.assertEqual(len(self.closes), 1)

    @defer.inlineCallbacks
    def test_slow_consumer_never_blocks_reactor(self):
        """
        With a consumer thread that does not read, the reactor pushes 10 x limit items without blocking: push
        returns False after the limit and the reactor call completes; the consumer, when it wakes up, gets the
        first C{limit} items and ResourceExhausted.
        """
        limit = 4
        feed = self.make_feed(limit)
        release = threading.Event()
        self.addCleanup(release.set)

        def slow_consumer():
            release.wait(30)
            return _consume(feed, FakeContext())

        consumer = threads.deferToThread(slow_consumer)

        def push_all():
            self.assertTrue(threadable.isInIOThread())
            return [feed.push(i) for i in range(10 * limit)]

        results = yield deferLater(reactor, 0, push_all)
        self.assertEqual(results, [True] * limit + [False] * 9 * limit)
        self.assertFalse(release.is_set())
        release.set()
        got, error = yield consumer
        self.assertEqual(got, list(range(limit)))
        self.assertIsInstance(error, errors.ResourceExhausted)
        self.assertEqual(len(self.closes), 1)

    @defer.inlineCallbacks
    def test_consumer_keeps_up(self):
        """
        A consumer that keeps up gets far more than C{limit} items in total.
        """
        limit = 2
        feed = self.make_feed(limit)
        d = threads.deferToThread(_consume, feed, FakeContext())
        pushed = 0
        while pushed < 20:
            if feed.push(pushed):
                pushed += 1
            else:
                self.fail("consumer fell behind a feed it drains")
            while feed._queue.qsize():
                yield deferLater(reactor, 0.001, lambda: None)
        feed.finish()
        got, error = yield d
        self.assertEqual(got, list(range(20)))
        self.assertIsNone(error)

    @defer.inlineCallbacks
    def test_vanished_client(self):
        """
        When the client goes away (context no longer active), items() ends and on_close is called once, in the
        reactor thread; later pushes are refused.
        """
        feed = self.make_feed(10)
        context = FakeContext()
        reactor_thread = threading.current_thread()
        d = threads.deferToThread(_consume, feed, context)
        self.assertTrue(feed.push("first"))
        yield deferLater(reactor, 0.02, lambda: None)
        context.active = False
        got, error = yield d
        self.assertEqual(got, ["first"])
        self.assertIsNone(error)
        yield self.closed_deferred
        self.assertEqual(self.closes, [(reactor_thread, True)])
        self.assertTrue(feed.closed)
        self.assertFalse(feed.push("late"))

    @defer.inlineCallbacks
    def test_cancel_from_thread(self):
        """
        cancel_from_thread (grpc's callback when the RPC ends) wakes a waiting consumer, and closes the feed in
        the reactor thread.
        """
        feed = self.make_feed(10)
        d = threads.deferToThread(_consume, feed, FakeContext(), 30)
        yield deferLater(reactor, 0.02, lambda: None)
        yield threads.deferToThread(feed.cancel_from_thread)
        got, error = yield d
        self.assertEqual((got, error), ([], None))
        yield self.closed_deferred
        self.assertEqual(len(self.closes), 1)
        self.assertTrue(self.closes[0][1])


class StreamFeedCancelRaceTests(SynchronousTestCase):
    """
    cancel_from_thread puts its end marker from the grpc thread before the reactor learns of it; the reactor's
    pushes in between must neither raise nor block.
    """

    def test_push_after_cancel_on_full_feed(self):
        """
        A full feed cancelled from the grpc thread refuses further pushes without raising; on_close runs once,
        when the reactor gets to it.
        """
        fake = RecordingReactor()
        closes = []
        feed = StreamFeed(fake, 2, on_close=lambda: closes.append(1))
        self.assertTrue(feed.push("a"))
        self.assertTrue(feed.push("b"))
        feed.cancel_from_thread()
        self.assertFalse(feed.push("c"))
        self.assertFalse(feed.push("d"))
        self.assertEqual(closes, [1])
        fake.run_calls()
        self.assertEqual(closes, [1])
        self.assertEqual(_consume(feed, FakeContext()), (["a", "b"], None))

    def test_push_after_two_cancels(self):
        """
        Two cancels (items() seeing an inactive context and grpc's callback) fill the queue: push still refuses
        without raising.
        """
        fake = RecordingReactor()
        closes = []
        feed = StreamFeed(fake, 2, on_close=lambda: closes.append(1))
        self.assertTrue(feed.push("a"))
        feed.cancel_from_thread()
        feed.cancel_from_thread()
        self.assertFalse(feed.push("b"))
        self.assertEqual(closes, [1])
        fake.run_calls()
        self.assertEqual(closes, [1])
        self.assertEqual(_consume(feed, FakeContext()), (["a"], None))
