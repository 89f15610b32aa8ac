// Plays a packaged job: HLS (hls.js, or natively where Media Source Extensions are missing) or
// DASH (dash.js), with a choice of rendition. The libraries load only when a player is shown.

import { h, replace } from '../dom.js';

const VENDOR = new URL('../../vendor/', import.meta.url);

export function player(playback) {
  const video = h('video', { controls: true, playsinline: true, preload: 'metadata', 'aria-label': 'Playback' });
  const renditions = h('select', { id: 'rendition', disabled: true }, h('option', { value: '-1' }, 'Automatic'));
  const status = h('p', { class: 'hint', 'aria-live': 'polite' });
  const formats = [['HLS', playback.hls], ['DASH', playback.dash]].filter(([, url]) => url);
  const buttons = formats.map(([name, url]) => h('button', { type: 'button', onclick: () => load(name, url) }, name));
  const element = h('section', { class: 'card player', 'aria-labelledby': 'player-title' },
    h('h2', { id: 'player-title' }, 'Play'),
    video,
    h('div', { class: 'controls' }, buttons, h('label', { for: 'rendition' }, 'Rendition'), renditions),
    status);
  let stop = () => {};
  const choices = (list, choose) => {
    replace(renditions, h('option', { value: '-1' }, 'Automatic'),
      list.map((r, i) => h('option', { value: String(i) }, `${r.height}p · ${Math.round(r.bitrate / 1000)} kb/s`)));
    renditions.disabled = !list.length;
    renditions.onchange = () => choose(Number(renditions.value));
  };
  async function load(name, url) {
    stop();
    status.textContent = `Loading ${name}…`;
    try {
      // hls.js wherever Media Source Extensions exist (it lists the renditions); the
      // browser's own HLS (iOS Safari) otherwise.
      const Hls = name === 'HLS' && window.MediaSource ? (await import(new URL('hls.min.mjs', VENDOR))).default : null;
      if (name === 'HLS' && !(Hls && Hls.isSupported())) {
        video.src = url;
        stop = () => video.removeAttribute('src');
      } else if (name === 'HLS') {
        const hls = new Hls();
        hls.on(Hls.Events.MANIFEST_PARSED, (_e, data) => choices(data.levels.map((l) => ({ height: l.height, bitrate: l.bitrate })), (i) => { hls.currentLevel = i; }));
        hls.on(Hls.Events.ERROR, (_e, data) => { if (data.fatal) status.textContent = `HLS error: ${data.details}`; });
        hls.loadSource(url);
        hls.attachMedia(video);
        stop = () => hls.destroy();
      } else {
        const dashjs = await import(new URL('dash.all.min.mjs', VENDOR));
        const dash = dashjs.MediaPlayer().create();
        dash.initialize(video, url, false);
        dash.on(dashjs.MediaPlayer.events.STREAM_INITIALIZED, () => {
          const list = dash.getRepresentationsByType ? dash.getRepresentationsByType('video') : [];
          choices(list.map((r) => ({ height: r.height, bitrate: r.bandwidth })), (i) => {
            dash.updateSettings({ streaming: { abr: { autoSwitchBitrate: { video: i < 0 } } } });
            if (i >= 0) dash.setRepresentationForTypeByIndex('video', i, true);
          });
        });
        stop = () => dash.destroy();
      }
      status.textContent = `${name}: ready`;
    } catch (e) {
      status.textContent = `${name} cannot play here: ${e.message}`;
    }
  }
  if (formats.length) load(...formats[0]);
  return { element, stop: () => stop() };
}
