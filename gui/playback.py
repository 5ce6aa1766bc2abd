"""Playing an event's audio on the default output device, through sounddevice (PortAudio)."""

import numpy as np


class Player:
    """Plays one stretch of audio at a time: a new one stops the one playing."""

    def __init__(self):
        self._sounddevice = None  # imported on the first play: PortAudio probes every device on import

    def play(self, audio: np.ndarray, sample_rate: int) -> None:
        """Start playing `audio` ([n] float32) and return at once; OSError when there is no output."""
        if self._sounddevice is None:
            import sounddevice

            self._sounddevice = sounddevice
        try:
            self._sounddevice.play(audio, sample_rate)
        except self._sounddevice.PortAudioError as error:
            raise OSError(f"cannot play: {error}") from None

    def stop(self) -> None:
        if self._sounddevice is not None:
            self._sounddevice.stop()
