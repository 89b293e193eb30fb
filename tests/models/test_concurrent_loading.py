"""The service loads models from several threads (the worker's captioner, a query's ITM model,
the warm-up): loads must not break each other, and one model is loaded once."""

from __future__ import annotations

import gc
import threading

from imgsearch.models import Models
from imgsearch.settings import Settings


def test_threads_loading_blip_models_at_once_all_get_working_models() -> None:
    for _ in range(3):  # the race broke a load about once in a few service starts
        models = Models(Settings(models="tiny"))
        start = threading.Barrier(4)
        got: dict[str, object] = {}
        errors: list[BaseException] = []

        def load(name: str, key: str) -> None:
            start.wait()
            try:
                got[key] = getattr(models, name)
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        threads = [threading.Thread(target=load, args=(name, f"{name}{i}"))
                   for name in ("captioner", "itm") for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        assert not errors, errors
        assert gc.isenabled(), "a load left the garbage collector off"
        assert got["itm0"] is got["itm1"] and got["captioner0"] is got["captioner1"]
        match, _ = models.itm.score("a red circle", models.itm.vision_states([_red_circle()]))
        assert 0.0 <= float(match[0]) <= 1.0


def test_a_load_pauses_the_collector_and_leaves_it_as_it_found_it() -> None:
    """Loads run with the cyclic collector off (`Models._get`: the imports make ~450k objects);
    with it on before, it is on after; with it off (the CLI's start-up), it stays off."""
    models = Models(Settings(models="tiny"))
    assert gc.isenabled()
    assert models._get("probe", gc.isenabled) is False  # what the collector was during the load
    models.clip  # noqa: B018
    assert gc.isenabled()
    gc.disable()
    try:
        Models(Settings(models="tiny")).itm  # noqa: B018
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_a_process_that_keeps_its_models_has_what_a_load_makes_frozen(monkeypatch) -> None:
    """The CLI's start-up (`options.start_up_done`, with the collector off as `app.main` leaves it)
    says the process keeps its models: what a load makes is then frozen, so no later collection
    walks it (0.4 s holding the GIL at the start of an index run's CLIP phase). A process that did
    not say so (the tests, a library user) keeps a load's objects collectable."""
    import imgsearch.models as models_module
    from imgsearch.cli.options import start_up_done

    monkeypatch.setattr(models_module, "_FREEZE_LOADS", False)
    try:
        kept = [Models(Settings(models="tiny")) for _ in range(2)]  # what they load lives on
        before = gc.get_freeze_count()
        kept[0]._get("probe", lambda: [[] for _ in range(1000)])
        assert gc.get_freeze_count() < before + 1000, "a load frozen where the process did not ask"
        gc.disable()
        start_up_done()
        assert gc.isenabled() and models_module._FREEZE_LOADS
        before = gc.get_freeze_count()
        kept[1]._get("probe", lambda: [[] for _ in range(1000)])
        assert gc.get_freeze_count() >= before + 1000, "what the load made is not frozen"
        assert gc.isenabled()
    finally:
        gc.enable()
        gc.unfreeze()


def _red_circle():
    from PIL import Image, ImageDraw

    im = Image.new("RGB", (96, 96), "white")
    ImageDraw.Draw(im).ellipse((20, 20, 76, 76), fill="red")
    return im
