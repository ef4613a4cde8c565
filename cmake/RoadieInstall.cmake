include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

install(TARGETS roadie EXPORT roadieTargets
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR})
install(DIRECTORY include/roadie DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(EXPORT roadieTargets NAMESPACE roadie:: DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/roadie)
configure_package_config_file(cmake/roadieConfig.cmake.in ${PROJECT_BINARY_DIR}/roadieConfig.cmake
                              INSTALL_DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/roadie)
write_basic_package_version_file(${PROJECT_BINARY_DIR}/roadieConfigVersion.cmake
                                 COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/roadieConfig.cmake ${PROJECT_BINARY_DIR}/roadieConfigVersion.cmake
        DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/roadie)
