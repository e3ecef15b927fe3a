"""KraftCloud (Unikraft Cloud): package, deploy, upgrade and explain, as plain code.

Modules: :mod:`.plan` (names, request bodies, the plan), :mod:`.crash`
(stop_reason/stop_code as a sentence), :mod:`.retry` (bounded retries),
:mod:`.api` (the SDK calls), :mod:`.deploy` (the steps), :mod:`.package`
(the pinned CLI that packs the rootfs directories). Run in the deploy's
container as ``python -m openfga_release.recipes.kraftcloud deploy ...``.
"""
