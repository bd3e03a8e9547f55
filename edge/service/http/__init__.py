"""The live view in a browser (`emopi run --http [HOST:]PORT`): video, emotions, health.

:mod:`~emopi.edge.service.http.live` holds what the pipeline hands over (without blocking);
:mod:`~emopi.edge.service.http.server` serves it with aiohttp on its own thread;
``static/`` is the page (plain HTML, JS and CSS: no CDN, no build step).
"""
