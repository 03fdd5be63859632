# Warning flags of STYLE.md, errors with PDS_WERROR; sanitizers and
# hardening as options.
function(pds_warnings target)
    target_compile_options(${target} PRIVATE
        -Wall -Wextra -Wpedantic -Wshadow -Wstrict-prototypes
        -Wmissing-prototypes -Wformat=2 -Wimplicit-fallthrough -Wvla
        -Wcast-align -Wwrite-strings
        # Messages are cut to their fixed errmsg buffers on purpose; paths
        # are length-checked where they are built. (GCC's warning; clang,
        # for the fuzz targets, has none of that name.)
        $<$<C_COMPILER_ID:GNU>:-Wno-format-truncation>)
    if(PDS_WERROR)
        target_compile_options(${target} PRIVATE -Werror)
    endif()
endfunction()

if(PDS_SANITIZE)
    add_compile_options(-fsanitize=address,undefined -fno-omit-frame-pointer
        -fno-sanitize-recover=all)
    add_link_options(-fsanitize=address,undefined)
endif()

if(PDS_TSAN)
    add_compile_options(-fsanitize=thread -fno-omit-frame-pointer)
    add_link_options(-fsanitize=thread)
endif()

if(PDS_HARDEN)
    add_compile_options(-D_FORTIFY_SOURCE=2 -fstack-protector-strong -fPIE
        -fstack-clash-protection)
    add_link_options(-pie -Wl,-z,relro,-z,now)
endif()
