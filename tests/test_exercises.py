"""The exercise package's public face: every checker importable from chatlab.exercises, passing the references."""

from chatlab import exercises
from chatlab.exercises import solutions


def test_every_checker_passes_its_reference_solution():
    assert exercises.check_make_listener(solutions.make_listener, show=False)
    assert exercises.check_select_step(solutions.serve_step, show=False)
    assert exercises.check_framing(solutions.encode_frame, solutions.decode_frames, show=False)
    assert exercises.check_recv_exact(solutions.recv_exact, show=False)


def test_a_stub_fails_every_checker():
    def stub(*args, **kwargs):
        return None

    assert not exercises.check_make_listener(stub, show=False)
    assert not exercises.check_framing(stub, stub, show=False)
    assert not exercises.check_recv_exact(stub, show=False)
