import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class PixelFormat(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PIXEL_FORMAT_UNSPECIFIED: _ClassVar[PixelFormat]
    PIXEL_FORMAT_RGB8: _ClassVar[PixelFormat]
    PIXEL_FORMAT_RGBA8: _ClassVar[PixelFormat]
    PIXEL_FORMAT_GRAY8: _ClassVar[PixelFormat]

class CallingConvention(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CALLING_CONVENTION_UNSPECIFIED: _ClassVar[CallingConvention]
    CALLING_CONVENTION_SEED_JSON: _ClassVar[CallingConvention]
    CALLING_CONVENTION_SEED_IMAGE: _ClassVar[CallingConvention]
    CALLING_CONVENTION_ALLOC_JSON: _ClassVar[CallingConvention]
    CALLING_CONVENTION_ALLOC_IMAGE: _ClassVar[CallingConvention]
PIXEL_FORMAT_UNSPECIFIED: PixelFormat
PIXEL_FORMAT_RGB8: PixelFormat
PIXEL_FORMAT_RGBA8: PixelFormat
PIXEL_FORMAT_GRAY8: PixelFormat
CALLING_CONVENTION_UNSPECIFIED: CallingConvention
CALLING_CONVENTION_SEED_JSON: CallingConvention
CALLING_CONVENTION_SEED_IMAGE: CallingConvention
CALLING_CONVENTION_ALLOC_JSON: CallingConvention
CALLING_CONVENTION_ALLOC_IMAGE: CallingConvention

class Image(_message.Message):
    __slots__ = ("data", "width", "height", "format")
    DATA_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    width: int
    height: int
    format: PixelFormat
    def __init__(self, data: _Optional[bytes] = ..., width: _Optional[int] = ..., height: _Optional[int] = ..., format: _Optional[_Union[PixelFormat, str]] = ...) -> None: ...

class CallRequest(_message.Message):
    __slots__ = ("module", "function", "json", "image")
    MODULE_FIELD_NUMBER: _ClassVar[int]
    FUNCTION_FIELD_NUMBER: _ClassVar[int]
    JSON_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    module: str
    function: str
    json: str
    image: Image
    def __init__(self, module: _Optional[str] = ..., function: _Optional[str] = ..., json: _Optional[str] = ..., image: _Optional[_Union[Image, _Mapping]] = ...) -> None: ...

class CallResponse(_message.Message):
    __slots__ = ("json", "image", "module_sha256", "generation")
    JSON_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    MODULE_SHA256_FIELD_NUMBER: _ClassVar[int]
    GENERATION_FIELD_NUMBER: _ClassVar[int]
    json: str
    image: Image
    module_sha256: str
    generation: int
    def __init__(self, json: _Optional[str] = ..., image: _Optional[_Union[Image, _Mapping]] = ..., module_sha256: _Optional[str] = ..., generation: _Optional[int] = ...) -> None: ...

class ListModulesRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListModulesResponse(_message.Message):
    __slots__ = ("modules",)
    MODULES_FIELD_NUMBER: _ClassVar[int]
    modules: _containers.RepeatedCompositeFieldContainer[ModuleInfo]
    def __init__(self, modules: _Optional[_Iterable[_Union[ModuleInfo, _Mapping]]] = ...) -> None: ...

class FunctionInfo(_message.Message):
    __slots__ = ("name", "calling_convention", "signature", "image_formats")
    NAME_FIELD_NUMBER: _ClassVar[int]
    CALLING_CONVENTION_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FORMATS_FIELD_NUMBER: _ClassVar[int]
    name: str
    calling_convention: CallingConvention
    signature: str
    image_formats: _containers.RepeatedScalarFieldContainer[PixelFormat]
    def __init__(self, name: _Optional[str] = ..., calling_convention: _Optional[_Union[CallingConvention, str]] = ..., signature: _Optional[str] = ..., image_formats: _Optional[_Iterable[_Union[PixelFormat, str]]] = ...) -> None: ...

class ModuleSettings(_message.Message):
    __slots__ = ("seed_offset", "instance_policy", "call_timeout_seconds", "max_memory_bytes", "config_json", "file_sha256")
    SEED_OFFSET_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_POLICY_FIELD_NUMBER: _ClassVar[int]
    CALL_TIMEOUT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    MAX_MEMORY_BYTES_FIELD_NUMBER: _ClassVar[int]
    CONFIG_JSON_FIELD_NUMBER: _ClassVar[int]
    FILE_SHA256_FIELD_NUMBER: _ClassVar[int]
    seed_offset: int
    instance_policy: str
    call_timeout_seconds: float
    max_memory_bytes: int
    config_json: str
    file_sha256: str
    def __init__(self, seed_offset: _Optional[int] = ..., instance_policy: _Optional[str] = ..., call_timeout_seconds: _Optional[float] = ..., max_memory_bytes: _Optional[int] = ..., config_json: _Optional[str] = ..., file_sha256: _Optional[str] = ...) -> None: ...

class ModuleInfo(_message.Message):
    __slots__ = ("name", "sha256", "generation", "loaded_at", "functions", "last_error", "last_error_at", "size_bytes", "settings", "source_kind", "source", "source_digest")
    NAME_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    GENERATION_FIELD_NUMBER: _ClassVar[int]
    LOADED_AT_FIELD_NUMBER: _ClassVar[int]
    FUNCTIONS_FIELD_NUMBER: _ClassVar[int]
    LAST_ERROR_FIELD_NUMBER: _ClassVar[int]
    LAST_ERROR_AT_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    SETTINGS_FIELD_NUMBER: _ClassVar[int]
    SOURCE_KIND_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    SOURCE_DIGEST_FIELD_NUMBER: _ClassVar[int]
    name: str
    sha256: str
    generation: int
    loaded_at: _timestamp_pb2.Timestamp
    functions: _containers.RepeatedCompositeFieldContainer[FunctionInfo]
    last_error: str
    last_error_at: _timestamp_pb2.Timestamp
    size_bytes: int
    settings: ModuleSettings
    source_kind: str
    source: str
    source_digest: str
    def __init__(self, name: _Optional[str] = ..., sha256: _Optional[str] = ..., generation: _Optional[int] = ..., loaded_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., functions: _Optional[_Iterable[_Union[FunctionInfo, _Mapping]]] = ..., last_error: _Optional[str] = ..., last_error_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., size_bytes: _Optional[int] = ..., settings: _Optional[_Union[ModuleSettings, _Mapping]] = ..., source_kind: _Optional[str] = ..., source: _Optional[str] = ..., source_digest: _Optional[str] = ...) -> None: ...
